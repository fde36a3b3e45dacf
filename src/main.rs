// The binary links every dependency of the package but uses only the library: the check for
// unused dependencies is the library's (Cargo.toml `[lints]`).
#![allow(unused_crate_dependencies)]

fn main() -> std::process::ExitCode {
    pgmove::cli::run(std::env::args_os())
}
