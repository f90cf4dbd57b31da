//! The `dagrun` binary: everything lives in the library; `cli::run` parses the command line,
//! runs it, prints the one error and picks the exit code.

fn main() -> std::process::ExitCode {
    dagrun::cli::run()
}
