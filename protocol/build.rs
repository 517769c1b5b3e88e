//! Compiles `schema/link.capnp` without a system `capnp` binary: `capnpc-embedded` runs the
//! reference compiler as WebAssembly in-process, and `capnpc` turns its output into Rust.

fn main() {
    println!("cargo:rerun-if-changed=schema/link.capnp");
    let request = capnpc_embedded::CompileCommand::new()
        .file("schema/link.capnp")
        .src_prefix("schema")
        .compile()
        .expect("compiling schema/link.capnp");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
    capnpc::codegen::CodeGenerationCommand::new()
        .output_directory(out_dir)
        .run(&request[..])
        .expect("generating Rust code for schema/link.capnp");
}
