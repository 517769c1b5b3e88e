//! The colour markup the game core writes and the proxy renders for each client.
//!
//! The core never writes terminal escapes: it cannot know what a given client understands, and
//! escapes embedded in world text would reach screen readers and web clients as garbage. It
//! writes `{red}`-style tags instead (the syntax is in `MARKUP.md`), and the proxy renders them
//! per session with [`render_ansi`] at the session's [`ColorDepth`], after an optional [`wrap`].
//!
//! Everything here reads markup through the one tokenizer, [`tokens`], so no two renderers can
//! disagree about what a piece of markup means. Nothing here can fail or panic: markup that is
//! not a tag is text, which keeps a typo in a room description visible instead of fatal.

use serde::{Deserialize, Serialize};
use std::fmt::{self, Write as _};

/// How much colour a client has told us it can show.
///
/// The default is [`ColorDepth::Ansi16`]: it is what a client that announces nothing (no
/// TTYPE/MTTS) most likely supports, since practically every terminal and MUD client has shown
/// the 16 ANSI colours for decades, while 256 or truecolor codes sent to a client without them
/// come out as wrong colours or visible debris. Clients that can do more say so (TTYPE, MTTS),
/// and so do screen-reader clients that speak MTTS.
///
/// The variants are ordered by capability, so `depth.min(limit)` caps a session's depth.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub enum ColorDepth {
    /// Plain text: screen readers, dumb terminals, logs.
    None,
    #[default]
    Ansi16,
    Ansi256,
    TrueColor,
}

/// The 16 standard colours, in ANSI order (so `named as u8` is the palette index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Named {
    Black,
    Red,
    Green,
    Yellow,
    Blue,
    Magenta,
    Cyan,
    White,
    BrightBlack,
    BrightRed,
    BrightGreen,
    BrightYellow,
    BrightBlue,
    BrightMagenta,
    BrightCyan,
    BrightWhite,
}

const NAMED: [Named; 16] = [
    Named::Black,
    Named::Red,
    Named::Green,
    Named::Yellow,
    Named::Blue,
    Named::Magenta,
    Named::Cyan,
    Named::White,
    Named::BrightBlack,
    Named::BrightRed,
    Named::BrightGreen,
    Named::BrightYellow,
    Named::BrightBlue,
    Named::BrightMagenta,
    Named::BrightCyan,
    Named::BrightWhite,
];

const NAMES: [&str; 16] = [
    "black",
    "red",
    "green",
    "yellow",
    "blue",
    "magenta",
    "cyan",
    "white",
    "bright-black",
    "bright-red",
    "bright-green",
    "bright-yellow",
    "bright-blue",
    "bright-magenta",
    "bright-cyan",
    "bright-white",
];

impl Named {
    /// The name used in markup, e.g. `bright-red`.
    pub fn name(self) -> &'static str {
        NAMES[self as usize]
    }

    fn from_index(index: u8) -> Option<Named> {
        NAMED.get(usize::from(index)).copied()
    }
}

/// A colour as the markup names it, before any client's depth is considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Color {
    /// `{red}`: the client's own palette entry, so players' colour themes apply.
    Named(Named),
    /// `{208}`: an xterm-256 palette index.
    Indexed(u8),
    /// `{#ff8800}`.
    Rgb(u8, u8, u8),
}

/// One recognised markup tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tag {
    Fg(Color),
    Bg(Color),
    Bold,
    Underline,
    Italic,
    /// `{/}`: back to the client's default style.
    Reset,
}

/// Writes the tag as markup in its canonical spelling, so code that builds markup need not
/// spell tags by hand (`format!("{}", Tag::Bold)` is `{bold}`).
impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, color) = match *self {
            Tag::Fg(color) => ("", color),
            Tag::Bg(color) => ("bg:", color),
            Tag::Bold => return f.write_str("{bold}"),
            Tag::Underline => return f.write_str("{underline}"),
            Tag::Italic => return f.write_str("{italic}"),
            Tag::Reset => return f.write_str("{/}"),
        };
        match color {
            Color::Named(named) => write!(f, "{{{prefix}{}}}", named.name()),
            Color::Indexed(index) => write!(f, "{{{prefix}{index}}}"),
            Color::Rgb(r, g, b) => write!(f, "{{{prefix}#{r:02x}{g:02x}{b:02x}}}"),
        }
    }
}

/// A piece of markup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// Visible text. Never contains a control character (they are dropped, tabs become a
    /// space), so no renderer can pass a terminal escape through by accident.
    Text(&'a str),
    /// A line break. Separate from text because renderers close styles at line ends.
    Newline,
    Tag(Tag),
}

/// Splits markup into tokens. This is the only parser of markup.
pub fn tokens(markup: &str) -> Tokens<'_> {
    Tokens { rest: markup }
}

/// The iterator returned by [`tokens`].
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    rest: &'a str,
}

/// The longest tag is `bg:bright-magenta`. Looking no further than this for the closing brace
/// keeps a text full of stray `{` linear to read.
const MAX_TAG_LEN: usize = 17;

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            let first = self.rest.chars().next()?;
            match first {
                '{' => {
                    if self.rest.starts_with("{{") {
                        let brace = &self.rest[..1];
                        self.rest = &self.rest[2..];
                        return Some(Token::Text(brace));
                    }
                    let after = &self.rest[1..];
                    let close = after.bytes().take(MAX_TAG_LEN + 1).position(|b| b == b'}');
                    // `}` is ASCII and never part of a longer UTF-8 sequence, so `end` is a
                    // char boundary.
                    let tag = close.and_then(|end| Some((end, parse_tag(&after[..end])?)));
                    if let Some((end, tag)) = tag {
                        self.rest = &after[end + 1..];
                        return Some(Token::Tag(tag));
                    }
                    // Not a tag: the brace is text, and scanning resumes right after it so
                    // that `{ {red}` still finds the second tag.
                    let brace = &self.rest[..1];
                    self.rest = after;
                    return Some(Token::Text(brace));
                }
                '\n' => {
                    self.rest = &self.rest[1..];
                    return Some(Token::Newline);
                }
                '\t' => {
                    self.rest = &self.rest[1..];
                    return Some(Token::Text(" "));
                }
                c if c.is_control() => {
                    self.rest = &self.rest[c.len_utf8()..];
                }
                _ => {
                    let end = self
                        .rest
                        .find(|c: char| c == '{' || c.is_control())
                        .unwrap_or(self.rest.len());
                    let text = &self.rest[..end];
                    self.rest = &self.rest[end..];
                    return Some(Token::Text(text));
                }
            }
        }
    }
}

fn parse_tag(name: &str) -> Option<Tag> {
    match name {
        "/" => Some(Tag::Reset),
        "bold" => Some(Tag::Bold),
        "underline" => Some(Tag::Underline),
        "italic" => Some(Tag::Italic),
        _ => match name.strip_prefix("bg:") {
            Some(color) => parse_color(color).map(Tag::Bg),
            None => parse_color(name).map(Tag::Fg),
        },
    }
}

fn parse_color(text: &str) -> Option<Color> {
    if let Some(hex) = text.strip_prefix('#') {
        // Checked first because from_str_radix would also accept a leading `+`.
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let value = u32::from_str_radix(hex, 16).ok()?;
        let [_, r, g, b] = value.to_be_bytes();
        return Some(Color::Rgb(r, g, b));
    }
    if !text.is_empty() && text.len() <= 3 && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u8>().ok().map(Color::Indexed);
    }
    let index = NAMES.iter().position(|&name| name == text)?;
    Some(Color::Named(NAMED[index]))
}

/// Makes text safe to put into markup: the result renders exactly as `text` reads, minus the
/// characters below, at every depth and in every renderer.
///
/// Use it on everything a player typed (says, tells, titles, names) before it goes into
/// markup. Besides doubling `{`, it drops every character that could change what *other*
/// text looks like: control characters (C0 including line breaks and tabs, DEL, C1, and so
/// ESC: colour, cursor movement, a fake line), the line and paragraph separators U+2028/U+2029
/// (some clients break lines there), and bidirectional controls (they make a line read
/// differently from what it contains).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '{' {
            out.push_str("{{");
        } else if !is_unsafe_in_player_text(c) {
            out.push(c);
        }
    }
    out
}

fn is_unsafe_in_player_text(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// The text of some markup without its tags: what a screen reader should hear.
pub fn plain(markup: &str) -> String {
    let mut out = String::with_capacity(markup.len());
    for token in tokens(markup) {
        match token {
            Token::Text(text) => out.push_str(text),
            Token::Newline => out.push('\n'),
            Token::Tag(_) => {}
        }
    }
    out
}

/// The style in force at some point of the markup. `C` is the colour as a renderer sees it:
/// resolved to a client's depth for ANSI, as written for HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Style<C> {
    fg: Option<C>,
    bg: Option<C>,
    bold: bool,
    underline: bool,
    italic: bool,
}

impl<C> Default for Style<C> {
    fn default() -> Self {
        Style {
            fg: None,
            bg: None,
            bold: false,
            underline: false,
            italic: false,
        }
    }
}

impl<C: PartialEq> Style<C> {
    fn apply(&mut self, tag: Tag, resolve: impl Fn(Color) -> C) {
        match tag {
            Tag::Fg(color) => self.fg = Some(resolve(color)),
            Tag::Bg(color) => self.bg = Some(resolve(color)),
            Tag::Bold => self.bold = true,
            Tag::Underline => self.underline = true,
            Tag::Italic => self.italic = true,
            Tag::Reset => *self = Style::default(),
        }
    }

    fn is_plain(&self) -> bool {
        self.fg.is_none() && self.bg.is_none() && !self.bold && !self.underline && !self.italic
    }

    /// Whether going from `self` to `to` turns something off. That takes a full reset: the
    /// per-attribute "off" codes (22, 24, 39, ...) are missing from older clients.
    fn loses_something_in(&self, to: &Style<C>) -> bool {
        (self.fg.is_some() && to.fg.is_none())
            || (self.bg.is_some() && to.bg.is_none())
            || (self.bold && !to.bold)
            || (self.underline && !to.underline)
            || (self.italic && !to.italic)
    }
}

/// A colour in the form a client at some depth can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paint {
    /// 0..16: SGR 30-37/90-97 (and 40-47/100-107).
    Basic(u8),
    Indexed(u8),
    Rgb(u8, u8, u8),
}

fn paint(color: Color, depth: ColorDepth) -> Paint {
    match (color, depth) {
        (Color::Named(named), _) => Paint::Basic(named as u8),
        (Color::Indexed(index), ColorDepth::None | ColorDepth::Ansi16) => {
            Paint::Basic(if index < 16 {
                index
            } else {
                nearest_16(xterm_rgb(index))
            })
        }
        (Color::Indexed(index), _) => Paint::Indexed(index),
        // Straight to the 16 rather than via the 256: rounding twice drifts further.
        (Color::Rgb(r, g, b), ColorDepth::None | ColorDepth::Ansi16) => {
            Paint::Basic(nearest_16((r, g, b)))
        }
        (Color::Rgb(r, g, b), ColorDepth::Ansi256) => Paint::Indexed(nearest_256((r, g, b))),
        (Color::Rgb(r, g, b), ColorDepth::TrueColor) => Paint::Rgb(r, g, b),
    }
}

type Rgb = (u8, u8, u8);

/// xterm's defaults. Clients differ (and players theme them), so this is only the best guess
/// for *which* of the 16 a colour is closest to.
const BASIC_RGB: [Rgb; 16] = [
    (0, 0, 0),
    (205, 0, 0),
    (0, 205, 0),
    (205, 205, 0),
    (0, 0, 238),
    (205, 0, 205),
    (0, 205, 205),
    (229, 229, 229),
    (127, 127, 127),
    (255, 0, 0),
    (0, 255, 0),
    (255, 255, 0),
    (92, 92, 255),
    (255, 0, 255),
    (0, 255, 255),
    (255, 255, 255),
];

fn xterm_rgb(index: u8) -> Rgb {
    match index {
        0..16 => BASIC_RGB[usize::from(index)],
        16..232 => {
            let i = index - 16;
            let level = |step: u8| if step == 0 { 0 } else { 55 + 40 * step };
            (level(i / 36), level(i / 6 % 6), level(i % 6))
        }
        _ => {
            let grey = 8 + 10 * (index - 232);
            (grey, grey, grey)
        }
    }
}

/// Squared distance with the channels weighted roughly as the eye weighs them (the "redmean"
/// approximation): unweighted RGB distance counts blue as much as green, which the eye does not.
fn distance(a: Rgb, b: Rgb) -> u32 {
    let mean_red = (u32::from(a.0) + u32::from(b.0)) / 2;
    let d = |x: u8, y: u8| u32::from(x.abs_diff(y)).pow(2);
    (((512 + mean_red) * d(a.0, b.0)) >> 8)
        + 4 * d(a.1, b.1)
        + (((767 - mean_red) * d(a.2, b.2)) >> 8)
}

/// Only the cube and the grey ramp are candidates: entries 0-15 are whatever the player's
/// theme made them, so they cannot stand in for an exact colour.
fn nearest_256(rgb: Rgb) -> u8 {
    (16..=255)
        .min_by_key(|&index| distance(rgb, xterm_rgb(index)))
        .unwrap_or(16)
}

fn nearest_16(rgb: Rgb) -> u8 {
    (0..16)
        .min_by_key(|&index| distance(rgb, BASIC_RGB[usize::from(index)]))
        .unwrap_or(7)
}

const RESET: &str = "\x1b[0m";

/// Renders markup as text with ANSI SGR sequences for a client at `depth`.
///
/// Styles are emitted only just before the text they apply to, so tags with nothing after them
/// cost nothing. Each line ends with a reset if a style is showing and the style is set again
/// on the next line: a background left on across a line break paints the whole next line on
/// terminals that erase with the current background, and a line the proxy sends on its own
/// (a prompt, a `[tether]` notice) must not inherit someone's colour. For the same reason
/// every call starts from the client's default style and ends back at it.
///
/// Line breaks come out as `\n`; the caller turns them into whatever its transport needs.
pub fn render_ansi(markup: &str, depth: ColorDepth) -> String {
    if depth == ColorDepth::None {
        return plain(markup);
    }
    let mut out = String::with_capacity(markup.len() + 16);
    let mut wanted = Style::default();
    let mut shown = Style::default();
    for token in tokens(markup) {
        match token {
            Token::Tag(tag) => wanted.apply(tag, |color| paint(color, depth)),
            Token::Text(text) => {
                write_sgr(&shown, &wanted, &mut out);
                shown = wanted;
                out.push_str(text);
            }
            Token::Newline => {
                if !shown.is_plain() {
                    out.push_str(RESET);
                    shown = Style::default();
                }
                out.push('\n');
            }
        }
    }
    if !shown.is_plain() {
        out.push_str(RESET);
    }
    out
}

/// Writes one SGR sequence taking the terminal from `from` to `to`, or nothing if they match.
fn write_sgr(from: &Style<Paint>, to: &Style<Paint>, out: &mut String) {
    if from == to {
        return;
    }
    let mut params = String::new();
    let base = if from.loses_something_in(to) {
        params.push('0');
        Style::default()
    } else {
        *from
    };
    let mut param = |p: fmt::Arguments<'_>| {
        if !params.is_empty() {
            params.push(';');
        }
        // Writing to a String cannot fail.
        let _ = params.write_fmt(p);
    };
    if to.bold && !base.bold {
        param(format_args!("1"));
    }
    if to.italic && !base.italic {
        param(format_args!("3"));
    }
    if to.underline && !base.underline {
        param(format_args!("4"));
    }
    if let Some(fg) = to.fg.filter(|&fg| Some(fg) != base.fg) {
        match fg {
            Paint::Basic(n) if n < 8 => param(format_args!("{}", 30 + n)),
            Paint::Basic(n) => param(format_args!("{}", 90 + n - 8)),
            Paint::Indexed(n) => param(format_args!("38;5;{n}")),
            Paint::Rgb(r, g, b) => param(format_args!("38;2;{r};{g};{b}")),
        }
    }
    if let Some(bg) = to.bg.filter(|&bg| Some(bg) != base.bg) {
        match bg {
            Paint::Basic(n) if n < 8 => param(format_args!("{}", 40 + n)),
            Paint::Basic(n) => param(format_args!("{}", 100 + n - 8)),
            Paint::Indexed(n) => param(format_args!("48;5;{n}")),
            Paint::Rgb(r, g, b) => param(format_args!("48;2;{r};{g};{b}")),
        }
    }
    out.push_str("\x1b[");
    out.push_str(&params);
    out.push('m');
}

/// Renders markup as HTML for a web client, to be shown with `white-space: pre-wrap`.
///
/// Named colours become classes (`fg-red`, `bg-bright-blue`) so the page's stylesheet can
/// theme them as a terminal would; exact colours and attributes are inline styles, which need
/// no stylesheet. Spans close at every line break, so each line stands alone.
pub fn render_html(markup: &str) -> String {
    let mut out = String::with_capacity(markup.len() + 16);
    // Palette indices 0-15 are the named colours, so they get the themeable classes too.
    let resolve = |color: Color| match color {
        Color::Indexed(index) => Named::from_index(index).map_or(color, Color::Named),
        _ => color,
    };
    let mut wanted = Style::default();
    let mut shown = Style::default();
    for token in tokens(markup) {
        match token {
            Token::Tag(tag) => wanted.apply(tag, resolve),
            Token::Text(text) => {
                if shown != wanted {
                    if !shown.is_plain() {
                        out.push_str("</span>");
                    }
                    if !wanted.is_plain() {
                        open_span(&wanted, &mut out);
                    }
                    shown = wanted;
                }
                escape_html(text, &mut out);
            }
            Token::Newline => {
                if !shown.is_plain() {
                    out.push_str("</span>");
                    shown = Style::default();
                }
                out.push('\n');
            }
        }
    }
    if !shown.is_plain() {
        out.push_str("</span>");
    }
    out
}

fn open_span(style: &Style<Color>, out: &mut String) {
    let mut classes = Vec::new();
    let mut css = Vec::new();
    for (color, class_prefix, property) in [
        (style.fg, "fg-", "color"),
        (style.bg, "bg-", "background-color"),
    ] {
        match color {
            Some(Color::Named(named)) => classes.push(format!("{class_prefix}{}", named.name())),
            Some(Color::Indexed(index)) => {
                let (r, g, b) = xterm_rgb(index);
                css.push(format!("{property}:#{r:02x}{g:02x}{b:02x}"));
            }
            Some(Color::Rgb(r, g, b)) => css.push(format!("{property}:#{r:02x}{g:02x}{b:02x}")),
            None => {}
        }
    }
    if style.bold {
        css.push("font-weight:bold".to_string());
    }
    if style.italic {
        css.push("font-style:italic".to_string());
    }
    if style.underline {
        css.push("text-decoration:underline".to_string());
    }
    // Only our own class names and hex digits go into the attributes, never markup text.
    out.push_str("<span");
    if !classes.is_empty() {
        let _ = write!(out, " class=\"{}\"", classes.join(" "));
    }
    if !css.is_empty() {
        let _ = write!(out, " style=\"{}\"", css.join(";"));
    }
    out.push('>');
}

fn escape_html(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Word-wraps markup so that no line shows more than `width` columns, and returns markup.
///
/// Breaks go at spaces (the spaces at a break are dropped); a word longer than a line is cut.
/// Line breaks already in the text stay, as does indentation at their start when it fits.
/// Tags take no room. `width == 0` means no wrapping. Columns are counted per character, with
/// the common East Asian wide ranges and emoji as two and combining marks as none: close to what
/// terminals do, without a Unicode table.
///
/// The result renders like the input apart from the breaks, but is rewritten through the
/// tokenizer: tags come out in their canonical spelling and a literal `{` as `{{`.
pub fn wrap(markup: &str, width: usize) -> String {
    if width == 0 {
        return markup.to_string();
    }
    let mut wrapper = Wrapper {
        width,
        out: String::with_capacity(markup.len() + markup.len() / width.max(8) + 8),
        column: 0,
        gap: Vec::new(),
        gap_width: 0,
        word: Vec::new(),
        word_width: 0,
    };
    for token in tokens(markup) {
        match token {
            Token::Text(text) => {
                for c in text.chars() {
                    if c == ' ' {
                        wrapper.end_word();
                        wrapper.gap.push(Piece::Char(' '));
                        wrapper.gap_width += 1;
                    } else {
                        wrapper.word.push(Piece::Char(c));
                        wrapper.word_width += char_width(c);
                    }
                }
            }
            // A tag between words travels with the gap, so it survives a break there.
            Token::Tag(tag) if wrapper.word.is_empty() => wrapper.gap.push(Piece::Tag(tag)),
            Token::Tag(tag) => wrapper.word.push(Piece::Tag(tag)),
            Token::Newline => {
                wrapper.end_word();
                wrapper.end_line();
                wrapper.out.push('\n');
            }
        }
    }
    wrapper.end_word();
    wrapper.end_line();
    wrapper.out
}

#[derive(Debug, Clone, Copy)]
enum Piece {
    Char(char),
    Tag(Tag),
}

struct Wrapper {
    width: usize,
    out: String,
    /// Columns used on the current output line.
    column: usize,
    /// Spaces and tags since the last word.
    gap: Vec<Piece>,
    gap_width: usize,
    word: Vec<Piece>,
    word_width: usize,
}

impl Wrapper {
    fn end_word(&mut self) {
        if self.word.is_empty() {
            return;
        }
        if self.column + self.gap_width + self.word_width <= self.width {
            self.write_gap(true);
            self.column += self.gap_width;
        } else {
            self.write_gap(false);
            if self.column > 0 {
                self.out.push('\n');
                self.column = 0;
            }
        }
        self.gap_width = 0;
        for piece in std::mem::take(&mut self.word) {
            match piece {
                Piece::Char(c) => {
                    let w = char_width(c);
                    // Only reached for words longer than a line.
                    if self.column > 0 && self.column + w > self.width {
                        self.out.push('\n');
                        self.column = 0;
                    }
                    push_literal(c, &mut self.out);
                    self.column += w;
                }
                Piece::Tag(tag) => {
                    let _ = write!(self.out, "{tag}");
                }
            }
        }
        self.word_width = 0;
    }

    /// Trailing spaces are dropped: invisible, and past the edge they would wrap on their own.
    fn end_line(&mut self) {
        self.write_gap(false);
        self.gap_width = 0;
        self.column = 0;
    }

    fn write_gap(&mut self, with_spaces: bool) {
        for piece in std::mem::take(&mut self.gap) {
            match piece {
                Piece::Char(c) if with_spaces => push_literal(c, &mut self.out),
                Piece::Char(_) => {}
                Piece::Tag(tag) => {
                    let _ = write!(self.out, "{tag}");
                }
            }
        }
    }
}

fn push_literal(c: char, out: &mut String) {
    if c == '{' {
        out.push_str("{{");
    } else {
        out.push(c);
    }
}

fn char_width(c: char) -> usize {
    match u32::from(c) {
        0x0300..=0x036f | 0x200b..=0x200f | 0x20d0..=0x20ff | 0xfe00..=0xfe0f | 0xfe20..=0xfe2f => {
            0
        }
        0x1100..=0x115f
        | 0x2e80..=0x303e
        | 0x3041..=0x33ff
        | 0x3400..=0x4dbf
        | 0x4e00..=0x9fff
        | 0xa000..=0xa4cf
        | 0xac00..=0xd7a3
        | 0xf900..=0xfaff
        | 0xfe30..=0xfe4f
        | 0xff00..=0xff60
        | 0xffe0..=0xffe6
        | 0x1f300..=0x1f64f
        | 0x1f900..=0x1f9ff
        | 0x20000..=0x2fffd
        | 0x30000..=0x3fffd => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPTHS: [ColorDepth; 4] = [
        ColorDepth::None,
        ColorDepth::Ansi16,
        ColorDepth::Ansi256,
        ColorDepth::TrueColor,
    ];

    /// `render_ansi(markup, depth)` for each depth, in DEPTHS order.
    fn at_each_depth(markup: &str) -> [String; 4] {
        DEPTHS.map(|depth| render_ansi(markup, depth))
    }

    fn sgr(params: &str, text: &str) -> String {
        format!("\x1b[{params}m{text}\x1b[0m")
    }

    #[test]
    fn named_foregrounds_at_each_depth() {
        for (index, name) in NAMES.iter().enumerate() {
            let code = if index < 8 {
                30 + index
            } else {
                90 + index - 8
            };
            let expected = sgr(&code.to_string(), "x");
            assert_eq!(
                at_each_depth(&format!("{{{name}}}x")),
                [
                    "x".to_string(),
                    expected.clone(),
                    expected.clone(),
                    expected
                ],
                "{name}"
            );
        }
    }

    #[test]
    fn named_backgrounds_at_each_depth() {
        for (index, name) in NAMES.iter().enumerate() {
            let code = if index < 8 {
                40 + index
            } else {
                100 + index - 8
            };
            let expected = sgr(&code.to_string(), "x");
            assert_eq!(
                at_each_depth(&format!("{{bg:{name}}}x")),
                [
                    "x".to_string(),
                    expected.clone(),
                    expected.clone(),
                    expected
                ],
                "bg:{name}"
            );
        }
    }

    #[test]
    fn indexed_colours_at_each_depth() {
        assert_eq!(
            at_each_depth("{208}x"),
            [
                "x".to_string(),
                sgr("33", "x"),
                sgr("38;5;208", "x"),
                sgr("38;5;208", "x")
            ]
        );
        assert_eq!(
            at_each_depth("{bg:208}x"),
            [
                "x".to_string(),
                sgr("43", "x"),
                sgr("48;5;208", "x"),
                sgr("48;5;208", "x")
            ]
        );
        // The first 16 indices are the named colours.
        assert_eq!(render_ansi("{1}x", ColorDepth::Ansi16), sgr("31", "x"));
        assert_eq!(render_ansi("{bg:9}x", ColorDepth::Ansi16), sgr("101", "x"));
        assert_eq!(render_ansi("{0}x", ColorDepth::Ansi256), sgr("38;5;0", "x"));
        assert_eq!(render_ansi("{255}x", ColorDepth::Ansi16), sgr("37", "x"));
        assert_eq!(render_ansi("{232}x", ColorDepth::Ansi16), sgr("30", "x"));
    }

    #[test]
    fn truecolor_at_each_depth() {
        assert_eq!(
            at_each_depth("{#ff8800}x"),
            [
                "x".to_string(),
                sgr("33", "x"),
                sgr("38;5;208", "x"),
                sgr("38;2;255;136;0", "x")
            ]
        );
        assert_eq!(
            at_each_depth("{bg:#112233}x"),
            [
                "x".to_string(),
                sgr("40", "x"),
                sgr("48;5;235", "x"),
                sgr("48;2;17;34;51", "x")
            ]
        );
        // Hex digits in either case.
        assert_eq!(
            render_ansi("{#FFaa00}x", ColorDepth::TrueColor),
            sgr("38;2;255;170;0", "x")
        );
    }

    #[test]
    fn attributes_at_each_depth() {
        for (tag, code) in [("bold", "1"), ("italic", "3"), ("underline", "4")] {
            let expected = sgr(code, "x");
            assert_eq!(
                at_each_depth(&format!("{{{tag}}}x")),
                [
                    "x".to_string(),
                    expected.clone(),
                    expected.clone(),
                    expected
                ],
                "{tag}"
            );
        }
    }

    #[test]
    fn reset_at_each_depth() {
        let expected = "\x1b[31ma\x1b[0mb".to_string();
        assert_eq!(
            at_each_depth("{red}a{/}b"),
            [
                "ab".to_string(),
                expected.clone(),
                expected.clone(),
                expected
            ]
        );
        // A reset with nothing showing costs nothing.
        assert_eq!(render_ansi("{/}a", ColorDepth::Ansi16), "a");
    }

    #[test]
    fn sgr_sequences_are_combined_and_minimal() {
        let d = ColorDepth::TrueColor;
        assert_eq!(
            render_ansi("{red}{bold}{bg:blue}{underline}{italic}a", d),
            sgr("1;3;4;31;44", "a")
        );
        assert_eq!(render_ansi("{red}a{bold}b", d), "\x1b[31ma\x1b[1mb\x1b[0m");
        assert_eq!(render_ansi("{red}a{red}b", d), sgr("31", "ab"));
        assert_eq!(render_ansi("{red}{green}a", d), sgr("32", "a"));
        assert_eq!(
            render_ansi("{red}{bold}a{/}{green}b", d),
            "\x1b[1;31ma\x1b[0;32mb\x1b[0m"
        );
        // Resolved colours compare equal: #ff0000 is 196 at 256 colours.
        assert_eq!(
            render_ansi("{196}a{#ff0000}b", ColorDepth::Ansi256),
            sgr("38;5;196", "ab")
        );
        // Tags with no text after them are never sent.
        assert_eq!(render_ansi("a{red}", d), "a");
        assert_eq!(render_ansi("{red}{/}a", d), "a");
        assert_eq!(render_ansi("{red}", d), "");
        assert_eq!(render_ansi("", d), "");
    }

    #[test]
    fn lines_end_clean_and_styles_resume() {
        let d = ColorDepth::Ansi16;
        assert_eq!(
            render_ansi("{bg:blue}a\nb", d),
            "\x1b[44ma\x1b[0m\n\x1b[44mb\x1b[0m"
        );
        assert_eq!(render_ansi("{red}a\n", d), "\x1b[31ma\x1b[0m\n");
        assert_eq!(render_ansi("{red}\na", d), "\n\x1b[31ma\x1b[0m");
        assert_eq!(render_ansi("a\r\nb", d), "a\nb");
    }

    #[test]
    fn each_call_starts_clean() {
        let d = ColorDepth::Ansi256;
        assert_eq!(
            render_ansi("{red}{bold}unclosed", d),
            sgr("1;31", "unclosed")
        );
        assert_eq!(render_ansi("next", d), "next");
    }

    #[test]
    fn default_depth_is_ansi16() {
        assert_eq!(ColorDepth::default(), ColorDepth::Ansi16);
        assert!(ColorDepth::None < ColorDepth::Ansi16);
        assert!(ColorDepth::Ansi256 < ColorDepth::TrueColor);
    }

    #[test]
    fn truecolor_falls_back_to_nearest_256() {
        assert_eq!(nearest_256((255, 0, 0)), 196);
        assert_eq!(nearest_256((0, 0, 0)), 16);
        assert_eq!(nearest_256((255, 255, 255)), 231);
        assert_eq!(nearest_256((255, 136, 0)), 208);
        // Greys go to the grey ramp, not to the cube's few greys.
        assert_eq!(nearest_256((128, 128, 128)), 244);
        assert_eq!(nearest_256((18, 18, 18)), 233);
        assert_eq!(nearest_256((48, 48, 48)), 236);
        assert_eq!(nearest_256((127, 128, 129)), 244);
        assert_eq!(nearest_256((238, 238, 238)), 255);
        // Every cube and ramp entry is its own nearest.
        for index in 16..=255 {
            assert_eq!(nearest_256(xterm_rgb(index)), index, "{index}");
        }
        assert_eq!(
            render_ansi("{#ff0000}x", ColorDepth::Ansi256),
            sgr("38;5;196", "x")
        );
        assert_eq!(
            render_ansi("{bg:#808080}x", ColorDepth::Ansi256),
            sgr("48;5;244", "x")
        );
    }

    #[test]
    fn truecolor_and_256_fall_back_to_nearest_16() {
        assert_eq!(
            render_ansi("{#ff0000}x", ColorDepth::Ansi16),
            sgr("91", "x")
        );
        assert_eq!(
            render_ansi("{#cc0000}x", ColorDepth::Ansi16),
            sgr("31", "x")
        );
        assert_eq!(
            render_ansi("{#808080}x", ColorDepth::Ansi16),
            sgr("90", "x")
        );
        assert_eq!(
            render_ansi("{#c0c0c0}x", ColorDepth::Ansi16),
            sgr("37", "x")
        );
        assert_eq!(
            render_ansi("{#000080}x", ColorDepth::Ansi16),
            sgr("34", "x")
        );
        assert_eq!(render_ansi("{196}x", ColorDepth::Ansi16), sgr("91", "x"));
        assert_eq!(
            render_ansi("{bg:#00ffff}x", ColorDepth::Ansi16),
            sgr("106", "x")
        );
        for index in 0..16 {
            assert_eq!(nearest_16(BASIC_RGB[usize::from(index)]), index);
        }
    }

    #[test]
    fn xterm_palette_layout() {
        assert_eq!(xterm_rgb(16), (0, 0, 0));
        assert_eq!(xterm_rgb(17), (0, 0, 95));
        assert_eq!(xterm_rgb(196), (255, 0, 0));
        assert_eq!(xterm_rgb(231), (255, 255, 255));
        assert_eq!(xterm_rgb(232), (8, 8, 8));
        assert_eq!(xterm_rgb(255), (238, 238, 238));
    }

    #[test]
    fn tokens_are_what_the_syntax_says() {
        use Token::*;
        let got: Vec<_> = tokens("a{red}{{b}{nope}\n{bg:#0a0B0c}{/}\tc{").collect();
        assert_eq!(
            got,
            vec![
                Text("a"),
                Tag(super::Tag::Fg(Color::Named(Named::Red))),
                Text("{"),
                Text("b}"),
                Text("{"),
                Text("nope}"),
                Newline,
                Tag(super::Tag::Bg(Color::Rgb(10, 11, 12))),
                Tag(super::Tag::Reset),
                Text(" "),
                Text("c"),
                Text("{"),
            ]
        );
    }

    #[test]
    fn every_tag_spelling_parses_back() {
        let mut all = vec![Tag::Bold, Tag::Underline, Tag::Italic, Tag::Reset];
        for color in NAMED
            .iter()
            .map(|&n| Color::Named(n))
            .chain((0..=255).map(Color::Indexed))
            .chain([
                Color::Rgb(0, 0, 0),
                Color::Rgb(255, 136, 0),
                Color::Rgb(1, 2, 3),
            ])
        {
            all.push(Tag::Fg(color));
            all.push(Tag::Bg(color));
        }
        for tag in all {
            let text = tag.to_string();
            assert!(text.len() <= MAX_TAG_LEN + 2, "{text}");
            assert_eq!(tokens(&text).collect::<Vec<_>>(), vec![Token::Tag(tag)]);
        }
        assert_eq!(
            Tag::Bg(Color::Named(Named::BrightMagenta)).to_string(),
            "{bg:bright-magenta}"
        );
        assert_eq!(Tag::Fg(Color::Rgb(255, 136, 0)).to_string(), "{#ff8800}");
    }

    #[test]
    fn unknown_and_unterminated_tags_are_literal() {
        for markup in [
            "{nope}",
            "{Red}",
            "{bright}",
            "{bg:}",
            "{bg:bold}",
            "{fg:red}",
            "{#12345}",
            "{#1234567}",
            "{#gggggg}",
            "{#+fffff}",
            "{256}",
            "{1000}",
            "{-1}",
            "{}",
            "{ red}",
            "{red",
            "{",
            "}",
            "a}b",
            "{bg:bright-magentaX}",
            "{/ }",
        ] {
            for depth in DEPTHS {
                assert_eq!(
                    render_ansi(markup, depth),
                    markup,
                    "{markup:?} at {depth:?}"
                );
            }
            assert_eq!(plain(markup), markup);
        }
        // A stray brace does not hide a real tag after it.
        assert_eq!(
            render_ansi("{ {red}x", ColorDepth::Ansi16),
            "{ \x1b[31mx\x1b[0m"
        );
        assert_eq!(render_ansi("{{red}}", ColorDepth::Ansi16), "{red}}");
        assert_eq!(plain("{{"), "{");
        assert_eq!(plain("{{{{"), "{{");
        assert_eq!(plain("{{{red}"), "{");
    }

    #[test]
    fn long_runs_of_stray_braces_are_fine() {
        let markup = "{".repeat(10_001) + &"x".repeat(100) + "}";
        assert_eq!(plain(&markup).len(), 5_001 + 101);
        let markup = "{ab".repeat(5_000);
        assert_eq!(render_ansi(&markup, ColorDepth::TrueColor), markup);
    }

    #[test]
    fn plain_drops_tags_and_control_characters_but_keeps_lines() {
        assert_eq!(
            plain("{bold}{red}Hello{/}, {{you}}!\n\tok\x07\x1b[1m"),
            "Hello, {you}}!\n ok[1m"
        );
    }

    #[test]
    fn escape_round_trips() {
        for text in [
            "",
            "hello",
            "{red}danger{/}",
            "{{",
            "}{",
            "a { b } c",
            "{#ff0000}",
            "naïve café 漢字 🙂",
            "100% {bold}",
        ] {
            let escaped = escape(text);
            assert_eq!(plain(&escaped), text, "{text:?}");
            for depth in DEPTHS {
                assert_eq!(render_ansi(&escaped, depth), text, "{text:?} at {depth:?}");
            }
        }
        assert_eq!(escape("{red}"), "{{red}");
    }

    #[test]
    fn injected_markup_stays_literal_inside_core_markup() {
        let name = escape("{bright-red}Admin{/}");
        let line = format!("{{green}}{name}{{/}} says, \"{}\"", escape("{bg:red}hi{"));
        assert_eq!(
            render_ansi(&line, ColorDepth::TrueColor),
            "\x1b[32m{bright-red}Admin{/}\x1b[0m says, \"{bg:red}hi{\""
        );
    }

    #[test]
    fn escape_removes_everything_that_could_change_other_text() {
        let hostile = "a\x1b[31mred\x07\x08\r\n[tether] fake\u{7f}\u{9b}2J\u{85}x\u{2028}y\u{2029}\u{202e}z\u{2066}\u{200f}\t!";
        let escaped = escape(hostile);
        assert_eq!(escaped, "a[31mred[tether] fake2Jxyz!");
        for depth in DEPTHS {
            let rendered = render_ansi(&escaped, depth);
            assert_eq!(rendered, escaped);
            assert!(!rendered.contains(|c: char| c.is_control()));
        }
    }

    #[test]
    fn core_markup_cannot_smuggle_control_characters_either() {
        let rendered = render_ansi("{red}a\x1b[2Jb\x07\u{9b}c\r\n", ColorDepth::TrueColor);
        assert_eq!(rendered, "\x1b[31ma[2Jbc\x1b[0m\n");
    }

    #[test]
    fn wrap_breaks_at_spaces() {
        assert_eq!(wrap("the quick brown fox", 9), "the quick\nbrown fox");
        assert_eq!(wrap("the quick brown fox", 10), "the quick\nbrown fox");
        assert_eq!(wrap("the quick brown fox", 100), "the quick brown fox");
        assert_eq!(wrap("a  b", 4), "a  b");
        assert_eq!(wrap("a  b", 3), "a\nb");
        assert_eq!(wrap("trailing   ", 20), "trailing");
    }

    #[test]
    fn wrap_width_zero_is_off() {
        let markup = "{red}some   text {nope}\n";
        assert_eq!(wrap(markup, 0), markup);
    }

    #[test]
    fn wrap_counts_only_visible_columns() {
        assert_eq!(
            wrap("{bold}{red}abc{/} {#ff8800}def{/} ghi", 7),
            "{bold}{red}abc{/} {#ff8800}def{/}\nghi"
        );
        // A tag at the break goes before it and still applies after it.
        let wrapped = wrap("aaa {red}bbb", 3);
        assert_eq!(wrapped, "aaa{red}\nbbb");
        assert_eq!(
            render_ansi(&wrapped, ColorDepth::Ansi16),
            "aaa\n\x1b[31mbbb\x1b[0m"
        );
        // A colour carried over a break is set again on the next line.
        assert_eq!(
            render_ansi(&wrap("{red}aaa bbb", 3), ColorDepth::Ansi16),
            "\x1b[31maaa\x1b[0m\n\x1b[31mbbb\x1b[0m"
        );
    }

    #[test]
    fn wrap_cuts_long_words() {
        assert_eq!(wrap("abcdefghij", 4), "abcd\nefgh\nij");
        assert_eq!(wrap("hi abcdefghij", 4), "hi\nabcd\nefgh\nij");
        assert_eq!(wrap("ab{red}cd{/}ef", 3), "ab{red}c\nd{/}ef");
        assert_eq!(wrap("abc", 1), "a\nb\nc");
    }

    #[test]
    fn wrap_keeps_lines_and_indentation() {
        assert_eq!(wrap("one two\n  three four", 8), "one two\n  three\nfour");
        assert_eq!(wrap("a\n\nb", 5), "a\n\nb");
        assert_eq!(wrap("\n", 5), "\n");
        // Indentation wider than the line is dropped rather than wrapped on its own.
        assert_eq!(wrap("      ab", 4), "ab");
    }

    #[test]
    fn wrap_keeps_literal_braces_literal() {
        let wrapped = wrap(&escape("{red} is a tag"), 8);
        assert_eq!(wrapped, "{{red} is\na tag");
        assert_eq!(plain(&wrapped), "{red} is\na tag");
        assert_eq!(wrap("{nope} x", 6), "{{nope}\nx");
    }

    #[test]
    fn wrap_counts_wide_and_combining_characters() {
        assert_eq!(wrap("漢字漢字", 4), "漢字\n漢字");
        assert_eq!(wrap("漢字 漢字", 5), "漢字\n漢字");
        assert_eq!(wrap("e\u{301}e\u{301} ab", 5), "e\u{301}e\u{301} ab");
        assert_eq!(wrap("漢", 1), "漢");
    }

    #[test]
    fn html_escapes_text() {
        assert_eq!(
            render_html("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(render_html(&escape("{red}<b>")), "{red}&lt;b&gt;");
    }

    #[test]
    fn html_styles() {
        assert_eq!(
            render_html("{red}{bg:bright-blue}a{/}b"),
            "<span class=\"fg-red bg-bright-blue\">a</span>b"
        );
        assert_eq!(
            render_html("{9}a"),
            "<span class=\"fg-bright-red\">a</span>"
        );
        assert_eq!(
            render_html("{#ff8800}{bg:208}{bold}{italic}{underline}a"),
            "<span style=\"color:#ff8800;background-color:#ff8700;font-weight:bold;\
             font-style:italic;text-decoration:underline\">a</span>"
        );
        assert_eq!(
            render_html("{red}a{bold}b\nc"),
            "<span class=\"fg-red\">a</span><span class=\"fg-red\" \
             style=\"font-weight:bold\">b</span>\n<span class=\"fg-red\" \
             style=\"font-weight:bold\">c</span>"
        );
        assert_eq!(render_html("a{red}"), "a");
        assert_eq!(
            render_html("{red}a{1}b"),
            "<span class=\"fg-red\">ab</span>"
        );
    }

    /// The examples in MARKUP.md, so the document cannot drift from the code.
    #[test]
    fn documented_examples_hold() {
        let d = ColorDepth::TrueColor;
        assert_eq!(render_ansi("{red}{bold}a{/}b", d), "\x1b[1;31ma\x1b[0mb");
        assert_eq!(render_ansi("{red}{bold}a{/}b", ColorDepth::None), "ab");
        assert_eq!(
            render_ansi("{#808080}x", ColorDepth::Ansi16),
            sgr("90", "x")
        );
        assert_eq!(
            render_ansi("{#808080}x", ColorDepth::Ansi256),
            sgr("38;5;244", "x")
        );
        assert_eq!(
            wrap("{bold}{red}abc{/} {#ff8800}def{/} ghi", 7),
            "{bold}{red}abc{/} {#ff8800}def{/}\nghi"
        );
        assert_eq!(wrap("hi abcdefghij", 4), "hi\nabcd\nefgh\nij");
        assert_eq!(
            render_html("{red}{bg:bright-blue}a{/}b"),
            "<span class=\"fg-red bg-bright-blue\">a</span>b"
        );
        assert_eq!(
            render_html("{#ff8800}{bold}a"),
            "<span style=\"color:#ff8800;font-weight:bold\">a</span>"
        );
        assert_eq!(Tag::Fg(Color::Named(Named::Red)).to_string(), "{red}");
        let name = "Mallory";
        let message = "{bright-red}[tether] server shutting down\r\n";
        let line = format!(
            "{{cyan}}{}{{/}} says, \"{}\"",
            escape(name),
            escape(message)
        );
        assert_eq!(
            render_ansi(&line, ColorDepth::Ansi16),
            "\x1b[36mMallory\x1b[0m says, \"{bright-red}[tether] server shutting down\""
        );
    }

    /// xorshift64*: deterministic, so a failure reproduces from the printed seed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[rustfmt::skip]
    const FRAGMENTS: &[&str] = &[
        "{", "}", "{{", "{/}", "{red}", "{bright-cyan}", "{bg:blue}", "{bg:bright-white}",
        "{#ff8800}", "{bg:#0a0b0c}", "{208}", "{bg:7}", "{bold}", "{underline}", "{italic}",
        "{nope}", "{#zzzzzz}", "{256}", "bg:", "#12", "red", " ", " ", " ", "  ", "\n", "\t", "\r",
        "\x1b", "\x1b[31m", "\u{7f}", "\u{9b}", "\u{85}", "\u{2028}", "\u{202e}", "a", "word",
        "longerwordhere", "é", "e\u{301}", "漢", "🙂", "<", "&", "\"", "'", ">",
    ];

    fn random_markup(rng: &mut Rng) -> String {
        let len = rng.below(24);
        (0..len)
            .map(|_| FRAGMENTS[rng.below(FRAGMENTS.len())])
            .collect()
    }

    /// Takes out the SGR sequences render_ansi writes, failing on any other escape.
    fn strip_sgr(rendered: &str) -> String {
        let mut out = String::new();
        let mut rest = rendered;
        while let Some(at) = rest.find('\x1b') {
            out.push_str(&rest[..at]);
            let after = rest[at..].strip_prefix("\x1b[").expect("only CSI");
            let end = after.find('m').expect("SGR ends in m");
            assert!(
                after[..end]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b';')
            );
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn strip_html(rendered: &str) -> String {
        let mut text = String::new();
        let mut rest = rendered;
        while let Some(at) = rest.find('<') {
            text.push_str(&rest[..at]);
            let end = rest[at..].find('>').expect("tag closes");
            let tag = &rest[at..at + end + 1];
            assert!(tag == "</span>" || tag.starts_with("<span "), "{tag}");
            rest = &rest[at + end + 1..];
        }
        text.push_str(rest);
        assert!(!text.contains(['>', '"', '\'']));
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    fn line_width(line: &str) -> usize {
        line.chars().map(char_width).sum()
    }

    #[test]
    fn fuzz_invariants() {
        let seed = 0x7e7e_2024_u64;
        let mut rng = Rng(seed);
        for round in 0..10_000 {
            let markup = random_markup(&mut rng);
            let context = format!("seed {seed:#x} round {round}: {markup:?}");
            let text = plain(&markup);
            assert!(
                !text.contains(|c: char| c.is_control() && c != '\n'),
                "{context}"
            );

            for depth in DEPTHS {
                let rendered = render_ansi(&markup, depth);
                assert_eq!(strip_sgr(&rendered), text, "{context} at {depth:?}");
                // The last sequence written, if any, is a reset.
                if let Some(last) = rendered.rfind('\x1b') {
                    assert!(
                        rendered[last..].starts_with(RESET),
                        "{context} at {depth:?}"
                    );
                }
                // No line leaves a style on.
                for line in rendered.split('\n') {
                    if let Some(last) = line.rfind('\x1b') {
                        assert!(line[last..].starts_with(RESET), "{context} at {depth:?}");
                    }
                }
            }
            assert_eq!(render_ansi(&markup, ColorDepth::None), text, "{context}");
            assert_eq!(strip_html(&render_html(&markup)), text, "{context}");

            // Player text: escaped, it is exactly its safe characters, with no styling.
            let escaped = escape(&markup);
            let safe: String = markup
                .chars()
                .filter(|&c| !is_unsafe_in_player_text(c))
                .collect();
            // Safe on its own, not only because the renderers drop control characters too.
            assert_eq!(escaped.replace("{{", "{"), safe, "{context}");
            for depth in DEPTHS {
                assert_eq!(render_ansi(&escaped, depth), safe, "{context} at {depth:?}");
            }

            let width = 1 + rng.below(12);
            let wrapped = wrap(&markup, width);
            let context = format!("{context} width {width}: {wrapped:?}");
            let wrapped_text = plain(&wrapped);
            for line in wrapped_text.split('\n') {
                assert!(
                    line_width(line) <= width.max(2),
                    "{context}: line {line:?} too wide"
                );
            }
            let squeeze = |s: &str| s.replace([' ', '\n'], "");
            assert_eq!(squeeze(&wrapped_text), squeeze(&text), "{context}");
            assert!(
                wrapped_text.matches('\n').count() >= text.matches('\n').count(),
                "{context}"
            );
            assert_eq!(wrap(&wrapped, width), wrapped, "{context}: not idempotent");
            for depth in DEPTHS {
                let rendered = render_ansi(&wrapped, depth);
                assert_eq!(strip_sgr(&rendered), wrapped_text, "{context}");
            }
        }
    }
}
