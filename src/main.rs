fn main() -> std::process::ExitCode {
    pgmove::cli::run(std::env::args_os())
}
