fn main() -> std::process::ExitCode {
    tether_engine::main(tether_core::rules())
}
