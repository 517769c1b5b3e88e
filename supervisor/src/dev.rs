//! Dev mode: `cargo run` at the workspace root builds only the supervisor (the default
//! member), so the supervisor builds the proxy and the core itself before starting them,
//! with the same profile it was built with.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::process::ExitStatus;

use thiserror::Error;

const PACKAGE: &str = "tether-supervisor";

#[derive(Debug, Error)]
pub enum BuildError {
    #[error("cannot run {} to build tether-proxy and tether-core", cargo.display())]
    Spawn {
        cargo: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("building tether-proxy and tether-core failed ({status}); see the errors above")]
    Failed { status: ExitStatus },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevMode {
    cargo: PathBuf,
    release: bool,
    manifest: PathBuf,
}

impl DevMode {
    /// Dev mode is on when `cargo run` started this very package.
    pub fn detect() -> Option<DevMode> {
        let exe = std::env::current_exe().ok()?;
        DevMode::from_parts(
            std::env::var_os("CARGO"),
            std::env::var_os("CARGO_PKG_NAME"),
            &exe,
        )
    }

    fn from_parts(
        cargo: Option<OsString>,
        package: Option<OsString>,
        exe: &Path,
    ) -> Option<DevMode> {
        let cargo = cargo.filter(|c| !c.is_empty())?;
        if package.as_deref() != Some(PACKAGE.as_ref()) {
            return None;
        }
        let release = exe
            .components()
            .any(|c| c == Component::Normal("release".as_ref()));
        Some(DevMode {
            cargo: PathBuf::from(cargo),
            release,
            manifest: Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"),
        })
    }

    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["build".into()];
        if self.release {
            args.push("--release".into());
        }
        args.extend(["-p", "tether-proxy", "-p", "tether-core", "--manifest-path"].map(Into::into));
        args.push(self.manifest.clone().into_os_string());
        args
    }

    /// Runs the build with cargo's output going to our stderr, where the developer looks.
    pub fn build(&self) -> Result<(), BuildError> {
        let status = std::process::Command::new(&self.cargo)
            .args(self.args())
            .stdin(std::process::Stdio::null())
            .status()
            .map_err(|source| BuildError::Spawn {
                cargo: self.cargo.clone(),
                source,
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(BuildError::Failed { status })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(cargo: Option<&str>, package: Option<&str>, exe: &str) -> Option<DevMode> {
        DevMode::from_parts(
            cargo.map(Into::into),
            package.map(Into::into),
            Path::new(exe),
        )
    }

    #[test]
    fn only_cargo_run_of_this_package_is_dev_mode() {
        let exe = "/w/target/debug/tether";
        assert!(detect(Some("/c/cargo"), Some("tether-supervisor"), exe).is_some());
        assert!(detect(None, Some("tether-supervisor"), exe).is_none());
        assert!(detect(Some(""), Some("tether-supervisor"), exe).is_none());
        // Under `cargo test` of another package.
        assert!(detect(Some("/c/cargo"), Some("tether-tests"), exe).is_none());
        assert!(detect(Some("/c/cargo"), None, exe).is_none());
    }

    #[test]
    fn the_profile_follows_the_executable() {
        let debug = detect(Some("cargo"), Some(PACKAGE), "/w/target/debug/tether").expect("dev");
        assert!(!debug.args().contains(&OsString::from("--release")));
        let release =
            detect(Some("cargo"), Some(PACKAGE), "/w/target/release/tether").expect("dev");
        let args = release.args();
        assert_eq!(args[..2], [OsString::from("build"), "--release".into()]);
        assert!(
            args.windows(2)
                .any(|w| w == [OsString::from("-p"), "tether-core".into()])
        );
        assert!(
            args.windows(2)
                .any(|w| w == [OsString::from("-p"), "tether-proxy".into()])
        );
        let manifest = args.last().expect("manifest path");
        assert!(Path::new(manifest).ends_with("supervisor/../Cargo.toml"));
        // "release" must be a whole component, not part of a name.
        let not = detect(Some("cargo"), Some(PACKAGE), "/w/prerelease/debug/tether").expect("dev");
        assert!(!not.release);
    }
}
