//! `tether link-certs`: the certificates that let proxies on other hosts attach to this
//! game's core (see `tether_protocol::link_tls` for what each file is and why).

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::{LinkCertsAction, Options};
use crate::config::{self, Settings};

/// Runs one action and says what it made and what to do next.
pub fn run(options: &Options, action: &LinkCertsAction) -> anyhow::Result<()> {
    crate::admin::same_user_as(&config::client_data_dir(options)?, "tether link-certs")?;
    let settings = Settings::resolve(options, config::Defaults::beside_current_exe(false)?)?;
    let dir = std::path::absolute(&settings.link_tls).unwrap_or(settings.link_tls.clone());
    match action {
        LinkCertsAction::Init => {
            tether_protocol::link_tls::init(&dir)
                .with_context(|| format!("making the link authority in {}", dir.display()))?;
            println!(
                "made this game's link authority and the core's certificate in {}\n\
                 next: start tether with --link-listen ADDR (or [link] listen), then run \
                 `tether link-certs proxy NAME` for each proxy host",
                dir.display()
            );
        }
        LinkCertsAction::Proxy { name, out } => {
            let out: PathBuf = out
                .clone()
                .unwrap_or_else(|| dir.join("proxies").join(name));
            tether_protocol::link_tls::issue_proxy(&dir, name, &out)
                .with_context(|| format!("signing a certificate for the proxy {name}"))?;
            println!(
                "made {}: copy it to the proxy's host as its DATA/link-tls (keep it private), \
                 then run `tether --core THIS_HOST:PORT` there",
                out.display()
            );
        }
    }
    Ok(())
}
