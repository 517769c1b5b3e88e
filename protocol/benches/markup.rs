//! Markup rendering: what the proxy does to every piece of game text, once per session that
//! sees it (`render_ansi` at the session's depth, after `wrap` when the player wants it), and
//! once per web session (`render_html`).
//!
//! The sample is what a player typically receives in one go: a room (name, description, exits,
//! who is here) followed by a couple of says. It mixes every kind of tag so each renderer's
//! colour conversion is exercised, not just its text copying.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tether_protocol::markup::{ColorDepth, Token, render_ansi, render_html, tokens, wrap};

/// 575 bytes, 13 style tags and their resets: named colours (kept as named at every depth), an
/// xterm-256 index and truecolor colours (converted per depth), a background, attributes,
/// an escaped brace from player text, and lines longer than 80 columns for `wrap` to break.
const ROOM: &str = "{bold}{bright-white}The Crooked Lantern{/}\n\
{#c8a060}Smoke-darkened beams sag over a common room crowded with scarred tables. A fire \
crackles in the wide stone hearth, and the smell of spiced ale hangs over everything.{/} \
{italic}Someone has carved initials into the bar.{/}\n\
{green}Exits:{/} {bright-green}north{/}, {bright-green}east{/}, {bright-green}down{/}\n\
{208}A stray cat{/} watches you from under a table.\n\
{cyan}Mira{/} says, \"Has anyone seen the ferryman tonight?\"\n\
{cyan}Oswin{/} says, \"Not since the bells. Try the {{docks}, or ask \
{bg:#202040}{underline}old Tam{/}.\"";

fn sample() -> &'static str {
    // Keep the sample honest if someone edits it: the figures in BENCHMARKS.md are per
    // ~500-600-byte message with a dozen or more tags.
    let tags = tokens(ROOM)
        .filter(|token| matches!(token, Token::Tag(_)))
        .count();
    assert!(
        (450..=600).contains(&ROOM.len()),
        "sample is {} bytes",
        ROOM.len()
    );
    assert!(tags >= 12, "sample has only {tags} tags");
    ROOM
}

fn bench_markup(c: &mut Criterion) {
    let markup = sample();
    let mut group = c.benchmark_group("markup");
    // Bytes of markup in, so the figures compare across renderers.
    group.throughput(Throughput::Bytes(markup.len() as u64));

    for (name, depth) in [
        ("none", ColorDepth::None),
        ("ansi16", ColorDepth::Ansi16),
        ("ansi256", ColorDepth::Ansi256),
        ("truecolor", ColorDepth::TrueColor),
    ] {
        group.bench_function(format!("render_ansi/{name}"), |b| {
            b.iter(|| render_ansi(black_box(markup), black_box(depth)));
        });
    }
    group.bench_function("render_html", |b| {
        b.iter(|| render_html(black_box(markup)));
    });
    group.bench_function("wrap/80", |b| {
        b.iter(|| wrap(black_box(markup), black_box(80)));
    });
    // The whole per-session path of a telnet client with NAWS and wrapping on (see the proxy's
    // `wire.rs`): wrap to the window, then render at the client's depth.
    group.bench_function("wrap80+render_ansi/ansi256", |b| {
        b.iter(|| render_ansi(&wrap(black_box(markup), 80), ColorDepth::Ansi256));
    });
    group.finish();
}

criterion_group!(benches, bench_markup);
criterion_main!(benches);
