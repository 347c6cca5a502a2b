//! `sesame-dist OUT_DIR`: writes the man pages and shell completions of `sesamed` and `sesame`,
//! generated from their clap definitions so they cannot drift from `--help`.
//!
//! ```text
//! OUT_DIR/man/sesamed.8, sesamed-client-add.8, …   one page per (sub)command
//! OUT_DIR/man/sesame.1, sesame-run.1, …
//! OUT_DIR/completions/{bash,zsh,fish}/…            in each shell's own file naming
//! ```
//!
//! `scripts/package` runs it and puts the files where Debian's man, bash-completion, zsh and
//! fish look for them.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::roff::{Roff, bold, roman};

/// What one program's top-level page says beyond its `--help`.
struct Extra {
    /// Man section: 8 for the daemon, 1 for the client.
    section: &'static str,
    /// `(name, text)` paragraphs for FILES.
    files: &'static [(&'static str, &'static str)],
    /// `(name, text)` paragraphs for ENVIRONMENT.
    environment: &'static [(&'static str, &'static str)],
    /// `(status, meaning)` for EXIT STATUS.
    exit_status: &'static [(&'static str, &'static str)],
    /// Other pages, `name(section)`.
    see_also: &'static str,
}

const SESAMED: Extra = Extra {
    section: "8",
    files: &[
        (
            "/etc/sesame/sesamed.toml",
            "The configuration: host name, transports, limits, command clusters, firewall and salt \
             back ends. Checked by sesamed configtest.",
        ),
        (
            "/etc/sesame/policies/",
            "Rego policies (*.rego) and their data (*.json). Reloaded when a file changes or on SIGHUP; \
             a policy that does not load is rejected and the old one kept.",
        ),
        (
            "/usr/lib/sesame/modules/",
            "The stock command modules (WebAssembly components).",
        ),
        (
            "/var/lib/sesame/",
            "The host identity (host.key, tls.key: 0600; tls.crt), the key pair the next \
             rotate-key moves to (host.key.next, 0600; clients pin its SHA-256), the key replaced \
             by the last rotate-key while it is still accepted (host.key.previous), the client registry \
             (clients.toml), the replay log, the firewall grants ledger, and the running daemon's \
             control socket (control.sock), which sesamed status asks.",
        ),
        (
            "/var/log/sesame/audit.jsonl",
            "The audit log: one JSON object per line for every request, accepted or not, each \
             line chained to the one before; audit.jsonl.head holds the chain's last link.",
        ),
        (
            "/var/log/sesame/decisions.jsonl",
            "The decision log: every policy decision with its input and result.",
        ),
    ],
    environment: &[
        (
            "SESAMED_CONFIG",
            "The configuration file, instead of /etc/sesame/sesamed.toml (the -c option wins).",
        ),
        (
            "SESAME_LOG",
            "Log filter in tracing's EnvFilter syntax (default info), e.g. sesamed=debug.",
        ),
        (
            "SESAME_LOG_FORMAT",
            "text (the default) or json: the daemon's own log as one JSON object per line \
             (the --log-format option wins).",
        ),
    ],
    exit_status: &[
        ("0", "Success."),
        (
            "1",
            "The command failed; the message on standard error says why. audit verify: a \
               log is not intact.",
        ),
        (
            "2",
            "configtest: the configuration, keys, registry, policy or a module is not usable; \
             policy test: a test failed or coverage is under the threshold; audit verify or \
             tail: a log could not be read.",
        ),
        ("3", "status: no daemon is running for this configuration."),
        ("4", "status: the daemon's state could not be found out."),
    ],
    see_also: "sesame(1), systemctl(1), ufw(8), nft(8)",
};

const SESAME: Extra = Extra {
    section: "1",
    files: &[
        (
            "~/.config/sesame/id.key",
            "This client's key (0600), made by sesame keygen.",
        ),
        (
            "~/.config/sesame/id.key.next, id.key.previous",
            "A key staged by sesame key rotate, and the key its --finish replaced (0600).",
        ),
        (
            "~/.config/sesame/hosts.toml",
            "Pinned hosts (key, QUIC address and certificate fingerprint, SQS queue) and host groups. \
             A host that rotated its key is re-pinned here when its answer says so.",
        ),
    ],
    environment: &[
        (
            "SESAME_HOME",
            "The client directory, instead of $XDG_CONFIG_HOME/sesame or ~/.config/sesame.",
        ),
        (
            "AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL_SQS",
            "The AWS settings for hosts reached over SQS, unless the host's entry names them.",
        ),
        (
            "NO_COLOR",
            "When set and not empty, errors are never coloured (they are only coloured on a terminal).",
        ),
    ],
    exit_status: &[
        (
            "0",
            "The command ran and its output was printed (ssh-proxy: the connection closed).",
        ),
        ("1", "The host answered with an error code."),
        ("2", "A local problem: no key, unknown host, bad arguments."),
        (
            "3",
            "No answer: host unreachable, certificate not the pinned one, key not enrolled, timeout \
             (ssh-proxy: also when the granted port took no connection).",
        ),
    ],
    see_also: "sesamed(8), ssh_config(5)",
};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: sesame-dist OUT_DIR");
        return ExitCode::from(2);
    };
    match write_all(Path::new(&out)) {
        Ok(n) => {
            println!("wrote {n} files under {}", Path::new(&out).display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sesame-dist: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn write_all(out: &Path) -> Result<usize> {
    let mut written = 0;
    for (cmd, extra) in [
        (sesamed::cli::Cli::command(), &SESAMED),
        (sesame_client::cli::Cli::command(), &SESAME),
    ] {
        written += man_pages(cmd.clone(), extra, &out.join("man"))?;
        written += completions(cmd, &out.join("completions"))?;
    }
    Ok(written)
}

/// Writes the command's page and one per subcommand, recursively (`sesamed-client-add.8`).
fn man_pages(root: clap::Command, extra: &Extra, dir: &Path) -> Result<usize> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let version = root.get_version().unwrap_or_default().to_owned();
    let mut pages = Vec::new();
    collect(root.clone(), &[], &mut pages);
    if pages.is_empty() {
        bail!("{} has no pages", root.get_name());
    }
    let top = root.get_name().to_owned();
    for (words, cmd) in &pages {
        let page = words.join("-");
        let man = clap_mangen::Man::new(cmd.clone())
            .title(page.to_uppercase())
            .section(extra.section)
            .source(format!("{top} {version}"))
            .manual("sesame");
        let mut text = Vec::new();
        man.render(&mut text)?;
        let mut more = Roff::new();
        if words.len() == 1 {
            paragraphs(&mut more, "FILES", extra.files);
            paragraphs(&mut more, "ENVIRONMENT", extra.environment);
            paragraphs(&mut more, "EXIT STATUS", extra.exit_status);
        }
        more.control("SH", ["SEE ALSO"]);
        let parent = if words.len() > 1 {
            format!("{}({}), ", words[..words.len() - 1].join("-"), extra.section)
        } else {
            String::new()
        };
        more.text([roman(format!("{parent}{}", extra.see_also))]);
        more.to_writer(&mut text)?;
        let path = dir.join(format!("{page}.{}", extra.section));
        fs::File::create(&path)
            .and_then(|mut f| f.write_all(&text))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(pages.len())
}

/// The command and its visible subcommands, depth first, with the words that name each.
fn collect(cmd: clap::Command, parent: &[String], out: &mut Vec<(Vec<String>, clap::Command)>) {
    let mut words = parent.to_vec();
    words.push(cmd.get_name().to_owned());
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .cloned()
        .collect();
    // The synopsis shows the words a user types: `sesamed client add`.
    let named = cmd
        .bin_name(words.join(" "))
        .display_name(words.join("-"))
        .disable_help_subcommand(true);
    out.push((words.clone(), named));
    for sub in subs {
        collect(sub, &words, out);
    }
}

fn paragraphs(roff: &mut Roff, heading: &str, items: &[(&str, &str)]) {
    roff.control("SH", [heading]);
    for (name, text) in items {
        roff.control("TP", []);
        roff.text([bold(*name)]);
        roff.text([roman(*text)]);
    }
}

/// bash, zsh and fish completion scripts, named as each shell's vendor directory expects.
fn completions(mut cmd: clap::Command, dir: &Path) -> Result<usize> {
    let name = cmd.get_name().to_owned();
    for (shell, file) in [
        (Shell::Bash, name.clone()),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let sub: PathBuf = dir.join(shell.to_string());
        fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        let path = sub.join(file);
        let mut f = fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?;
        clap_complete::generate(shell, &mut cmd, &name, &mut f);
    }
    Ok(3)
}
