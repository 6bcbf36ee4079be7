fn main() -> std::process::ExitCode {
    dreamlog::cli::main()
}
