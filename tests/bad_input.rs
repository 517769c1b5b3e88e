//! Bad input gets a clear message or a clean close with a reason; other players never notice.

use tether_tests::Tether;

#[test]
fn overlong_lines_invalid_utf8_and_garbage_get_messages_not_crashes() {
    let tether = Tether::start();
    let mut bystander = tether.connect();
    bystander.create("Bystander", "innocent1");
    let mut player = tether.connect();
    player.create("Mallory", "mischief1");

    let mut overlong = vec![b'a'; 10_000];
    overlong.extend_from_slice(b"\r\n");
    player.send_raw(&overlong);
    player.expect("longer than 8192 bytes");
    player.send("say after the long line");
    player.expect("You say, \"after the long line\"");

    player.send_raw(b"say caf\xe9 au lait\r\n");
    player.expect("not valid UTF-8");
    player.expect("You say, \"caf\u{fffd} au lait\"");

    // Escape sequences and control bytes never reach anyone else's screen.
    player.send_raw(b"say \x1b[31mred\x07 alert\r\n");
    let heard = bystander.expect("Mallory says");
    assert!(
        !heard.contains('\u{1b}') && !heard.contains('\u{7}'),
        "{heard:?}"
    );

    // Binary garbage, stray telnet commands included.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    player.send_raw(&garbage);
    player.send_raw(b"\r\n");
    player.send("say still standing");
    player.expect("You say, \"still standing\"");

    bystander.send("say unaffected");
    bystander.expect("You say, \"unaffected\"");
}

#[test]
fn a_flood_is_refused_then_closed_with_a_reason() {
    let tether = Tether::start();
    let mut bystander = tether.connect();
    bystander.create("Calm", "peaceful1");
    let mut flooder = tether.connect();
    flooder.create("Flood", "torrent1");

    let flood: Vec<u8> = (0..2_000)
        .flat_map(|i| format!("say wave {i}\r\n").into_bytes())
        .collect();
    flooder.send_raw(&flood);
    let seen = flooder.expect_closed();
    let transcript = flooder.transcript.join("\n");
    assert!(
        transcript.contains("sending too fast"),
        "first told to slow down: {seen:?}"
    );
    assert!(transcript.contains("flood"), "then closed with a reason");

    bystander.send("say the world goes on");
    bystander.expect("You say, \"the world goes on\"");
}
