//! Replays every committed fuzz input (the corpus the coverage-guided runs grew, and the
//! inputs that once crashed a target) through its target, on the stable toolchain.

use std::path::Path;

#[test]
fn every_corpus_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut replayed = 0;
    for (name, target) in tether_fuzzing::TARGETS {
        let mut inputs = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("a corpus entry").path();
                let data = match std::fs::read(&path) {
                    Ok(data) => data,
                    // A fuzzer running meanwhile replaces inputs with smaller ones.
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(error) => panic!("{}: {error}", path.display()),
                };
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name}: {} fails", path.display());
                inputs += 1;
            }
        }
        assert!(inputs > 0, "no corpus for the {name} target");
        replayed += inputs;
    }
    println!("replayed {replayed} inputs");
}
