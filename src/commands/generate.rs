//! `calsync generate` (hidden): man pages and shell completions, for packaging.
//!
//! Both are rendered from the clap definitions in `cli.rs`, so they say what `--help` says and
//! cannot drift from it. The man pages and completions checked in under `man/` and
//! `completions/` are this command's output; `tests/generate.rs` fails when they differ from
//! what the current build writes. Output is byte-for-byte reproducible (no date, no build
//! path), so the checked-in files only change when the definitions do.
//!
//! This module only writes into the folder it is given; it reads no configuration and no
//! state.

use crate::cli::{Args, GenerateCommand, Shell};
use crate::error::Error;
use crate::exit;
use crate::logging::{self, Stream};
use clap::CommandFactory;
use std::path::{Path, PathBuf};

/// The binary's name as installed (man page names and completion files derive from it).
const BIN: &str = "calsync";

/// Why a page or a script could not be written.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot create the folder {}: {source}", dir.display())]
    Folder {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs `generate`; logs (stderr) each file written.
///
/// # Errors
/// None that stop the process early: a file that cannot be written is logged and is exit 1.
pub fn run(command: &GenerateCommand) -> Result<i32, Error> {
    logging::init(Stream::Stderr);
    let written = match command {
        GenerateCommand::Man { dir } => write_man_pages(dir),
        GenerateCommand::Completions { shell, dir } => {
            write_completions(*shell, dir).map(|p| vec![p])
        }
    };
    match written {
        Ok(paths) => {
            for path in paths {
                log::info!(event = "generate.written", path = path.display().to_string().as_str();
                           "written");
            }
            Ok(exit::OK)
        }
        Err(e) => {
            log::error!(event = "generate.failed"; "{e}");
            Ok(exit::FAILED)
        }
    }
}

/// The man pages, file name → roff text: `calsync.1` and `calsync-<command>.1` for each
/// visible command (the hidden `generate` and clap's `help` get none).
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    let mut cmd = Args::command().disable_help_subcommand(true);
    // Building fills in the display names (`calsync-sync`) the sub-pages are named by.
    cmd.build();
    let mut pages = vec![render_page(cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages.push(render_page(sub.clone()));
    }
    pages
}

fn render_page(cmd: clap::Command) -> (String, Vec<u8>) {
    // Every page names the package, not the subcommand, as its source (the footer).
    let man = clap_mangen::Man::new(cmd)
        .source(format!("calsync {}", env!("CARGO_PKG_VERSION")))
        .manual("calsync manual");
    let mut text = Vec::new();
    // Rendering into a Vec cannot fail: the only error source is the writer.
    let _ = man.render(&mut text);
    (man.get_filename(), text)
}

/// The completion script for `shell`: its conventional file name and its text.
pub fn completion_script(shell: Shell) -> (String, Vec<u8>) {
    use clap_complete::Generator;
    let mut cmd = Args::command();
    let mut text = Vec::new();
    let name = match shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, BIN, &mut text);
            clap_complete::Shell::Bash.file_name(BIN)
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, BIN, &mut text);
            clap_complete::Shell::Zsh.file_name(BIN)
        }
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, BIN, &mut text);
            clap_complete::Shell::Fish.file_name(BIN)
        }
    };
    (name, text)
}

fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>, GenerateError> {
    ensure_folder(dir)?;
    man_pages()
        .into_iter()
        .map(|(name, text)| write(dir, &name, &text))
        .collect()
}

fn write_completions(shell: Shell, dir: &Path) -> Result<PathBuf, GenerateError> {
    ensure_folder(dir)?;
    let (name, text) = completion_script(shell);
    write(dir, &name, &text)
}

fn ensure_folder(dir: &Path) -> Result<(), GenerateError> {
    std::fs::create_dir_all(dir).map_err(|source| GenerateError::Folder {
        dir: dir.to_path_buf(),
        source,
    })
}

fn write(dir: &Path, name: &str, text: &[u8]) -> Result<PathBuf, GenerateError> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|source| GenerateError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_man_page_per_visible_command_and_none_for_generate() {
        let names: Vec<String> = man_pages().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "calsync.1",
                "calsync-sync.1",
                "calsync-cleanup.1",
                "calsync-validate.1",
                "calsync-health.1",
                "calsync-history.1",
                "calsync-audit-verify.1",
            ]
        );
    }

    #[test]
    fn pages_carry_the_help_text_and_exit_codes() {
        let pages = man_pages();
        let page = |name: &str| {
            String::from_utf8(pages.iter().find(|(n, _)| n == name).unwrap().1.clone()).unwrap()
        };
        let main = page("calsync.1");
        assert!(main.starts_with(".ie \\n(.g .ds Aq"), "{main}");
        assert!(main.contains(".TH calsync 1"), "{main}");
        assert!(main.contains("CALSYNC_CONFIG"), "{main}");
        assert!(main.contains("Exit codes"), "{main}");
        let health = page("calsync-health.1");
        assert!(health.contains("Nagios"), "{health}");
        assert!(health.contains("offline"), "{health}");
    }

    #[test]
    fn completions_name_the_commands_and_options() {
        for (shell, file) in [
            (Shell::Bash, "calsync.bash"),
            (Shell::Zsh, "_calsync"),
            (Shell::Fish, "calsync.fish"),
        ] {
            let (name, text) = completion_script(shell);
            assert_eq!(name, file);
            let text = String::from_utf8(text).unwrap();
            // fish names long options without their dashes (`-l dry-run`).
            for word in ["audit-verify", "dry-run", "config", "allow-mass-delete"] {
                assert!(text.contains(word), "{shell:?} lacks {word}");
            }
        }
    }

    #[test]
    fn unwritable_folder_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, "x").unwrap();
        let err = write_man_pages(&file).unwrap_err();
        assert!(matches!(err, GenerateError::Folder { .. }), "{err}");
    }
}
