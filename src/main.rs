//! The calsync binary: parse, dispatch, map errors to exit codes — nothing else.

use clap::Parser;
use clap::error::ErrorKind;

fn main() {
    if let Err(e) = calsync::interrupt::install() {
        eprintln!("calsync: cannot install signal handlers: {e}");
        std::process::exit(calsync::exit::TEMPFAIL);
    }
    let code = match calsync::cli::Args::try_parse() {
        Ok(args) => {
            let code = match calsync::commands::run(args) {
                Ok(code) => code,
                Err(e) => {
                    log::error!(event = e.event(), exit_code = e.exit_code(); "{e}");
                    if log::max_level() == log::LevelFilter::Off {
                        eprintln!("calsync: {e}");
                    }
                    e.exit_code()
                }
            };
            calsync::logging::finish();
            code
        }
        Err(e) => {
            let _ = e.print();
            match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => calsync::exit::OK,
                _ => calsync::exit::USAGE,
            }
        }
    };
    std::process::exit(code);
}
