//! Scale-out: two proxies in front of one core share one world, through a reload.

use std::process::{Child, Command, Stdio};

use tether_tests::{Client, Tether, binary, free_port, wait_for};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn players_on_two_proxies_hear_each_other() {
    let tether = Tether::start();
    let second_addr = format!("127.0.0.1:{}", free_port());
    let _second = KillOnDrop(
        Command::new(binary("tether-proxy"))
            .arg("--telnet")
            .arg(&second_addr)
            .arg("--link")
            .arg(tether.data_dir().join("link.sock"))
            .arg("--name")
            .arg("second")
            .stdin(Stdio::null())
            .spawn()
            .expect("starting a second proxy"),
    );

    let mut alice = tether.connect();
    alice.create("Alice", "wonderland");
    let mut bob = wait_for("the second proxy", || {
        std::net::TcpStream::connect(&second_addr)
            .ok()
            .map(Client::new)
    });
    bob.expect("connect <name>");
    bob.create("Bob", "builder1");

    alice.send("say hello from the first proxy");
    bob.expect("Alice says, \"hello from the first proxy\"");
    bob.send("say and back from the second");
    alice.expect("Bob says, \"and back from the second\"");

    // Right after a reload the proxies reattach one after the other; whoever speaks first
    // must still be heard on the other proxy.
    for round in 1..=5 {
        tether.reload();
        alice.send(&format!("say still here {round}"));
        bob.send(&format!("say me too {round}"));
        bob.expect(&format!("Alice says, \"still here {round}\""));
        alice.expect(&format!("Bob says, \"me too {round}\""));
    }
    bob.send("who");
    bob.expect("Alice");
}
