//! The operations kit, checked without the distributions' tools (scripts/check-systemd.sh and
//! scripts/check-packaging.sh run those): the example configuration is one calsync accepts,
//! the Debian maintainer scripts keep an administrator's files, every file the package
//! metadata names exists, the three packages ship the same files, and the units treat
//! exactly the documented "try later" exit codes as success.

use calsync::config::{self, Endpoint, Environment};
use calsync::exit;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn files_in(rel: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join(rel))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_example_configuration_is_accepted_with_its_credentials() {
    let creds = tempfile::tempdir().unwrap();
    for secret in ["office-password", "caldav-password"] {
        std::fs::write(creds.path().join(secret), "s3cret\n").unwrap();
    }
    let env = Environment {
        credentials_directory: Some(creds.path().to_path_buf()),
        ..Default::default()
    };
    let path = Path::new("/etc/calsync/calsync.toml");
    let settings = config::parse(path, &read("examples/calsync.toml"), None, &env)
        .unwrap_or_else(|e| panic!("examples/calsync.toml is rejected: {e}"));
    assert_eq!(settings.state, PathBuf::from("/var/lib/calsync/calsync.db"));
    assert_eq!(
        settings.audit_key_file,
        Some(PathBuf::from("/etc/calsync/audit.key"))
    );
    let pair = &settings.pairs[0];
    // Its active pair is one every build has (tests/first_run.rs runs it against Radicale).
    let (Endpoint::Caldav(source), Endpoint::Caldav(target)) = (&pair.source, &pair.target) else {
        panic!("the example publishes CalDAV into CalDAV: {pair:?}");
    };
    // Read from the credentials directory, one trailing newline dropped.
    assert_eq!(source.password.as_ref().unwrap().expose(), "s3cret");
    assert_eq!(target.password.as_ref().unwrap().expose(), "s3cret");

    // Without the credentials the error names the key, as the README promises.
    let err = config::parse(
        path,
        &read("examples/calsync.toml"),
        None,
        &Environment::default(),
    )
    .unwrap_err();
    assert!(err.key.ends_with("password_file"), "{err}");
}

fn run_script(script: &str, root: &Path, args: &[&str]) {
    let out = Command::new("sh")
        .arg(repo().join("packaging/deb").join(script))
        .args(args)
        .env("DPKG_ROOT", root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn postinst_creates_the_audit_key_once_and_never_touches_the_config() {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/calsync");
    std::fs::create_dir_all(&etc).unwrap();
    let edited = "# the administrator's own pairs\n";
    std::fs::write(etc.join("calsync.toml"), edited).unwrap();
    std::fs::set_permissions(
        etc.join("calsync.toml"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();

    run_script("postinst", root.path(), &["configure", ""]);
    let key = std::fs::read(etc.join("audit.key")).unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(mode(&etc.join("audit.key")), 0o600);

    // An upgrade: the key stays (a new one would break the audit chain), the config too.
    run_script("postinst", root.path(), &["configure", "0.1.0-1"]);
    assert_eq!(std::fs::read(etc.join("audit.key")).unwrap(), key);
    assert_eq!(
        std::fs::read_to_string(etc.join("calsync.toml")).unwrap(),
        edited
    );
    assert_eq!(mode(&etc.join("calsync.toml")), 0o600);
    let names: Vec<_> = std::fs::read_dir(&etc)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "no temp file left: {names:?}");

    // Purge removes what postinst made and the state; dpkg removes the conffile itself.
    let state = root.path().join("var/lib/private/calsync");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("calsync.db"), "x").unwrap();
    run_script("postrm", root.path(), &["remove"]);
    assert!(etc.join("audit.key").exists() && state.exists());
    run_script("postrm", root.path(), &["purge"]);
    assert!(!etc.join("audit.key").exists());
    assert!(!state.exists());
    assert!(etc.join("calsync.toml").exists());
}

#[test]
fn maintainer_scripts_keep_the_debhelper_token() {
    // cargo-deb inserts the systemd snippets there; without it the units are not handled.
    for script in ["postinst", "postrm"] {
        assert!(
            read(&format!("packaging/deb/{script}")).contains("\n#DEBHELPER#\n"),
            "{script}"
        );
    }
}

/// What `[package.metadata.deb]` says, read with a TOML parser.
fn deb_metadata() -> toml::Table {
    let cargo: toml::Table = read("Cargo.toml").parse().unwrap();
    cargo["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
        .clone()
}

#[test]
fn every_deb_asset_exists_with_the_intended_mode() {
    let deb = deb_metadata();
    let assets = deb["assets"].as_array().unwrap();
    let mut config_mode = None;
    for asset in assets {
        let [source, dest, mode] = asset.as_array().unwrap().as_slice() else {
            panic!("{asset:?}");
        };
        let (source, dest, mode) = (
            source.as_str().unwrap(),
            dest.as_str().unwrap(),
            mode.as_str().unwrap(),
        );
        assert!(
            u32::from_str_radix(mode, 8).is_ok(),
            "{source}: mode {mode}"
        );
        if dest.starts_with("etc/calsync/") {
            config_mode = Some(mode.to_string());
        }
        if source.starts_with("target/") {
            continue;
        }
        // A glob such as `man/*.1`: its folder must hold at least one match.
        let (dir, pattern) = source.rsplit_once('/').unwrap_or((".", source));
        let matched = files_in(dir).into_iter().any(|name| match pattern {
            "*" => true,
            p if p.starts_with('*') => name.ends_with(&p[1..]),
            p => name == p,
        });
        assert!(matched, "asset {source} matches no file");
    }
    assert_eq!(config_mode.as_deref(), Some("640"), "the config is 0640");
    assert_eq!(deb["maintainer-scripts"].as_str(), Some("packaging/deb/"));
    let units = deb["systemd-units"].as_table().unwrap();
    assert_eq!(
        units["enable"].as_bool(),
        Some(false),
        "nothing runs unconfigured"
    );
    assert_eq!(
        units["start"].as_bool(),
        Some(false),
        "nothing runs unconfigured"
    );
}

#[test]
fn rpm_and_arch_packages_ship_every_unit_man_page_and_completion() {
    let spec = read("packaging/rpm/calsync.spec");
    let pkgbuild = read("packaging/arch/PKGBUILD");
    for unit in files_in("systemd") {
        assert!(
            spec.contains(&format!("%{{_unitdir}}/{unit}\n")),
            "calsync.spec %files lacks {unit}"
        );
    }
    for text in [&spec, &pkgbuild] {
        for needle in [
            "systemd/*.service systemd/*.timer",
            "man/*.1",
            "completions/calsync.bash",
            "completions/_calsync",
            "completions/calsync.fish",
            "examples/calsync.toml",
        ] {
            assert!(text.contains(needle), "{needle} is not installed");
        }
    }
    assert!(
        spec.contains(
            "%config(noreplace) %attr(0640,root,root) %{_sysconfdir}/calsync/calsync.toml"
        )
    );
    assert!(pkgbuild.contains("backup=('etc/calsync/calsync.toml')"));
    assert!(pkgbuild.contains("install -Dm0640 examples/calsync.toml"));
    let version = format!("{}\n", env!("CARGO_PKG_VERSION"));
    assert!(
        spec.contains(&format!("Version:        {version}")),
        "calsync.spec has another version than Cargo.toml"
    );
    assert!(
        pkgbuild.contains(&format!("pkgver={version}")),
        "PKGBUILD has another version than Cargo.toml"
    );
}

/// The value of the first `key=` line of a unit file.
fn directive<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn services_succeed_on_exactly_the_try_later_codes_and_run_the_packaged_binary() {
    let mut want = [exit::UNAVAILABLE, exit::TEMPFAIL, exit::TERMINATED]
        .map(|c| c.to_string())
        .to_vec();
    want.sort();
    for name in files_in("systemd")
        .into_iter()
        .filter(|n| n.ends_with(".service"))
    {
        let unit = read(&format!("systemd/{name}"));
        let success = directive(&unit, "SuccessExitStatus");
        let mut codes: Vec<String> = success
            .iter()
            .flat_map(|v| v.split_whitespace())
            .map(str::to_string)
            .collect();
        codes.sort();
        assert_eq!(codes, want, "{name}: SuccessExitStatus");
        let exec = directive(&unit, "ExecStart");
        assert_eq!(exec.len(), 1, "{name}");
        let command = if name.starts_with("calsync-cleanup") {
            "cleanup"
        } else {
            "sync"
        };
        assert_eq!(
            exec[0],
            format!("/usr/bin/calsync --config ${{CREDENTIALS_DIRECTORY}}/calsync.toml {command}"),
            "{name}"
        );
        assert_eq!(directive(&unit, "Type"), ["oneshot"], "{name}");
        assert_eq!(directive(&unit, "DynamicUser"), ["yes"], "{name}");
        let creds = directive(&unit, "LoadCredential");
        assert!(
            creds
                .iter()
                .any(|c| c.starts_with("calsync.toml:/etc/calsync/")),
            "{name}: {creds:?}"
        );
        assert!(
            creds.contains(&"audit.key:/etc/calsync/audit.key"),
            "{name}: {creds:?}"
        );
    }
    for name in files_in("systemd")
        .into_iter()
        .filter(|n| n.ends_with(".timer"))
    {
        let timer = read(&format!("systemd/{name}"));
        assert_eq!(directive(&timer, "Persistent"), ["true"], "{name}");
        assert_eq!(directive(&timer, "RandomizedDelaySec").len(), 1, "{name}");
        assert_eq!(directive(&timer, "OnCalendar").len(), 1, "{name}");
        let service = name.replace(".timer", ".service");
        assert!(
            repo().join("systemd").join(&service).exists(),
            "{name} has no {service}"
        );
    }
}
