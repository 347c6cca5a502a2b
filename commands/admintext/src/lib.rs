//! Argument checking and text shared by the account commands (`user-add`, `user-lock`,
//! `user-unlock`, `user-remove`, `key-add`, `key-remove`, `group-add`, `group-remove`) and
//! `salt-apply`.
//!
//! A plain library: it calls no host interface, so using it adds no import to a module.
//!
//! ```
//! use admintext::{Usage, key_summary};
//!
//! const USAGE: Usage = Usage {
//!     line: "user-add NAME [--shell PATH] [--comment TEXT] [--group G]...",
//!     value_flags: &["--shell", "--comment", "--group"],
//!     switches: &[],
//!     max_positionals: Some(1),
//! };
//! let raw: Vec<String> = ["dave", "--group", "developers"].map(String::from).into();
//! let args = USAGE.check(&raw).expect("valid usage");
//! assert_eq!(USAGE.name(&args, 0, "NAME"), Ok("dave"));
//! assert_eq!(USAGE.flag_values(&raw, "--group"), ["developers"]);
//!
//! assert_eq!(
//!     key_summary(concat!(
//!         "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpyo4ZeTj/fgjh+",
//!         "FvzKwzxzIh8WWnHh6ELIpKiD6cti dave@laptop"
//!     )),
//!     "ssh-ed25519 …6ELIpKiD6cti dave@laptop"
//! );
//! ```

use sesame_guest::Args;

/// What a command accepts; every refusal names the bad argument and ends with
/// `(usage: LINE)`.
///
/// Flags follow [`Args`]: `--flag VALUE` or `--flag=VALUE` for the flags in `value_flags`, a
/// bare `--flag` for the `switches`, and a lone `--` ends the flags.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// The usage line: `user-add NAME [--shell PATH] [--comment TEXT] [--group G]...`.
    pub line: &'static str,
    /// The flags that take a value; each value must be non-blank.
    pub value_flags: &'static [&'static str],
    /// The flags that take no value (`--test`).
    pub switches: &'static [&'static str],
    /// How many positional arguments the command takes at most; `None` for any number.
    pub max_positionals: Option<usize>,
}

impl Usage {
    /// `message (usage: LINE)`.
    pub fn error(&self, message: &str) -> String {
        format!("{message} (usage: {})", self.line)
    }

    /// Checks `raw` against the usage and returns it ready for lookups.
    ///
    /// Refused: a flag the command does not know, a value flag without a value (or with a blank
    /// one), a switch given a value (`--test=yes`), and more positional arguments than the
    /// command takes. Values are not checked further here.
    pub fn check<'a>(&self, raw: &'a [String]) -> Result<Args<'a>, String> {
        for token in self.flags(raw) {
            let Token { name, value } = token;
            if self.switches.contains(&name) {
                if value.is_some() {
                    return Err(self.error(&format!("{name} takes no value")));
                }
            } else if self.value_flags.contains(&name) {
                if value.is_none_or(|v| v.trim().is_empty()) {
                    return Err(self.error(&format!("{name} needs a value")));
                }
            } else {
                return Err(self.error(&format!("unknown flag {name}")));
            }
        }
        let args = Args::new(raw).value_flags(self.value_flags);
        if let Some(max) = self.max_positionals
            && let Some(extra) = args.positional(max)
        {
            return Err(self.error(&format!("unexpected argument `{extra}`")));
        }
        Ok(args)
    }

    /// The `i`-th positional argument, a name (`NAME`, `GROUP`, `STATE`) that must be given and
    /// must not be blank. Its finer points are the host's to check.
    pub fn name<'a>(&self, args: &Args<'a>, i: usize, what: &str) -> Result<&'a str, String> {
        match args.positional(i) {
            None => Err(self.error(&format!("missing argument {what}"))),
            Some(name) if name.trim().is_empty() => Err(self.error(&format!("{what} is empty"))),
            Some(name) => Ok(name),
        }
    }

    /// Every value of `flag`, in order, for flags that may be given more than once
    /// (`--group a --group b`). Expects `raw` to have passed [`Usage::check`].
    pub fn flag_values<'a>(&self, raw: &'a [String], flag: &str) -> Vec<&'a str> {
        self.flags(raw)
            .filter(|t| t.name == flag)
            .filter_map(|t| t.value)
            .collect()
    }

    /// The flags in `raw`, read as [`Args`] reads them: `--` ends the flags, and a value flag
    /// written without `=` takes the next token as its value.
    fn flags<'a>(&self, raw: &'a [String]) -> impl Iterator<Item = Token<'a>> {
        let value_flags = self.value_flags;
        let mut tokens = raw.iter().map(String::as_str);
        std::iter::from_fn(move || {
            loop {
                let token = tokens.next()?;
                if token == "--" {
                    return None;
                }
                if !token.starts_with("--") {
                    continue;
                }
                return Some(match token.split_once('=') {
                    Some((name, value)) => Token {
                        name,
                        value: Some(value),
                    },
                    None if value_flags.contains(&token) => Token {
                        name: token,
                        value: tokens.next(),
                    },
                    None => Token {
                        name: token,
                        value: None,
                    },
                });
            }
        })
    }
}

/// A command that takes exactly the names in its usage line (`user-lock NAME`,
/// `group-add NAME GROUP`), makes one host call with them and says what it did.
///
/// `doing` and `done` are templates in which each placeholder of `names` (`{NAME}`, `{GROUP}`)
/// stands for its argument: a host refusal reads `cannot DOING: ERROR`, success reads `DONE`.
///
/// ```
/// use admintext::NameCommand;
/// use sesame_guest::HostError;
///
/// const LOCK: NameCommand<1> = NameCommand {
///     line: "user-lock NAME",
///     names: ["NAME"],
///     doing: "lock {NAME}",
///     done: "locked {NAME}",
/// };
/// let raw = vec!["dave".to_owned()];
/// assert_eq!(LOCK.run(&raw, |[name]| { assert_eq!(name, "dave"); Ok(()) }), Ok("locked dave".into()));
/// assert_eq!(
///     LOCK.run(&raw, |_| Err(HostError::Denied("not yours".into()))),
///     Err("cannot lock dave: denied: not yours".into())
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct NameCommand<const N: usize> {
    /// The usage line: `group-add NAME GROUP`.
    pub line: &'static str,
    /// The placeholders of the arguments, in order: `["NAME", "GROUP"]`.
    pub names: [&'static str; N],
    /// What the command does, for refusals: `add {NAME} to group {GROUP}`.
    pub doing: &'static str,
    /// What the command did: `added {NAME} to group {GROUP}`.
    pub done: &'static str,
}

impl<const N: usize> NameCommand<N> {
    /// The command's [`Usage`]: no flags, exactly `N` arguments.
    pub const fn usage(&self) -> Usage {
        Usage {
            line: self.line,
            value_flags: &[],
            switches: &[],
            max_positionals: Some(N),
        }
    }

    /// Checks `raw`, then calls `call` (the host function, or a test double) with the names.
    pub fn run(
        &self,
        raw: &[String],
        call: impl FnOnce([&str; N]) -> Result<(), sesame_guest::HostError>,
    ) -> Result<String, String> {
        let usage = self.usage();
        let args = usage.check(raw)?;
        let mut values = [""; N];
        for (i, (value, what)) in values.iter_mut().zip(self.names).enumerate() {
            *value = usage.name(&args, i, what)?;
        }
        match call(values) {
            Ok(()) => Ok(self.fill(self.done, &values)),
            Err(e) => Err(format!("cannot {}: {e}", self.fill(self.doing, &values))),
        }
    }

    fn fill(&self, template: &str, values: &[&str; N]) -> String {
        self.names
            .iter()
            .zip(values)
            .fold(template.to_owned(), |text, (what, value)| {
                text.replace(&format!("{{{what}}}"), value)
            })
    }
}

/// A flag and its value, if it has one.
struct Token<'a> {
    name: &'a str,
    value: Option<&'a str>,
}

/// The account a key command manages: `--user NAME` when given, else the caller's own
/// (self service).
pub fn account<'a>(args: &Args<'a>, client: &'a str) -> Result<&'a str, String> {
    Ok(args.flag_value("--user")?.unwrap_or(client))
}

/// The OpenSSH public key line in the positional arguments: a key arrives split at spaces
/// (`ssh-ed25519 AAAA… dave@laptop` is three arguments), so they are joined again with single
/// spaces. It must have at least a type and key data, on one line; the host checks the rest
/// (known type, real key data, no options).
pub fn key_line(usage: &Usage, args: &Args<'_>) -> Result<String, String> {
    let words: Vec<&str> = args.positionals().flat_map(str::split_whitespace).collect();
    if words.is_empty() {
        return Err(usage.error("missing argument KEY"));
    }
    if args.positionals().any(|p| p.contains(['\n', '\r'])) {
        return Err(usage.error("KEY must be a single line"));
    }
    if words.len() < 2 {
        return Err(usage.error("KEY must be an OpenSSH public key line: TYPE BASE64 [COMMENT]"));
    }
    Ok(words.join(" "))
}

/// A short, recognisable form of a key line for messages (not a fingerprint): the type, `…`
/// and the last 12 characters of the key data, then the comment if there is one:
/// `ssh-ed25519 …6ELIpKiD6cti dave@laptop`.
pub fn key_summary(line: &str) -> String {
    let mut words = line.split_whitespace();
    let kind = words.next().unwrap_or_default();
    let Some(blob) = words.next() else {
        return kind.to_owned();
    };
    let tail_start = blob.char_indices().rev().nth(11).map_or(0, |(i, _)| i);
    let tail = &blob[tail_start..];
    let comment: Vec<&str> = words.collect();
    if comment.is_empty() {
        format!("{kind} …{tail}")
    } else {
        format!("{kind} …{tail} {}", comment.join(" "))
    }
}

/// A `--ttl` duration: whole seconds, or a number followed by `s`, `m`, `h` or `d` (`8h`); at
/// least 1 second, at most `u32::MAX` seconds.
pub fn duration(s: &str) -> Result<u32, String> {
    let bad = || format!("invalid --ttl `{s}`: expected seconds, or a number and s, m, h or d (8h)");
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(scale)
        .and_then(|secs| u32::try_from(secs).ok())
        .filter(|&secs| secs > 0)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpyo4ZeTj/fgjh+FvzKwzxzIh8WWnHh6ELIpKiD6cti";

    const USER_ADD: Usage = Usage {
        line: "user-add NAME [--shell PATH] [--comment TEXT] [--group G]...",
        value_flags: &["--shell", "--comment", "--group"],
        switches: &[],
        max_positionals: Some(1),
    };

    const SALT: Usage = Usage {
        line: "salt-apply STATE [--test] [--pillar JSON]",
        value_flags: &["--pillar"],
        switches: &["--test"],
        max_positionals: Some(1),
    };

    const KEY_ADD: Usage = Usage {
        line: "key-add [--user NAME] [--ttl DURATION] KEY...",
        value_flags: &["--user"],
        switches: &[],
        max_positionals: None,
    };

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn check(usage: &Usage, v: &[&str]) -> Result<(), String> {
        usage.check(&strings(v)).map(|_| ())
    }

    #[test]
    fn value_flags_in_both_forms_and_switches() {
        let raw = strings(&[
            "dave",
            "--shell",
            "/bin/bash",
            "--comment=Dave Example",
            "--group",
            "a",
        ]);
        let args = USER_ADD.check(&raw).expect("valid usage");
        assert_eq!(USER_ADD.name(&args, 0, "NAME"), Ok("dave"));
        assert_eq!(args.flag_value("--shell"), Ok(Some("/bin/bash")));
        assert_eq!(args.flag_value("--comment"), Ok(Some("Dave Example")));

        let raw = strings(&["--test", "web.nginx", "--pillar", "{}"]);
        let args = SALT.check(&raw).expect("valid usage");
        assert!(args.has_flag("--test"));
        assert_eq!(SALT.name(&args, 0, "STATE"), Ok("web.nginx"));
        assert_eq!(args.flag_value("--pillar"), Ok(Some("{}")));
    }

    #[test]
    fn unknown_flags() {
        assert_eq!(
            check(&USER_ADD, &["dave", "--home", "/x"]),
            Err(format!("unknown flag --home (usage: {})", USER_ADD.line))
        );
        assert_eq!(
            check(&SALT, &["motd", "--tset"]),
            Err(format!("unknown flag --tset (usage: {})", SALT.line))
        );
        // After `--` everything is positional, flags or not.
        assert_eq!(check(&KEY_ADD, &["--", "--odd", "key"]), Ok(()));
    }

    #[test]
    fn flag_values_must_be_given() {
        for bad in [
            &["dave", "--shell"][..],
            &["dave", "--shell="],
            &["dave", "--group", " "],
        ] {
            let flag = bad[1].trim_end_matches('=');
            assert_eq!(
                check(&USER_ADD, bad),
                Err(format!("{flag} needs a value (usage: {})", USER_ADD.line)),
                "{bad:?}"
            );
        }
        assert_eq!(
            check(&SALT, &["motd", "--test=yes"]),
            Err(format!("--test takes no value (usage: {})", SALT.line))
        );
    }

    #[test]
    fn extra_positionals() {
        assert_eq!(
            check(&USER_ADD, &["dave", "erin"]),
            Err(format!("unexpected argument `erin` (usage: {})", USER_ADD.line))
        );
        // A value flag's value is not a positional.
        assert_eq!(check(&USER_ADD, &["dave", "--comment", "Dave"]), Ok(()));
        // Without a limit, any number.
        assert_eq!(check(&KEY_ADD, &["a", "b", "c", "d"]), Ok(()));
    }

    #[test]
    fn names_must_be_present_and_not_blank() {
        let raw = strings(&[]);
        let args = USER_ADD.check(&raw).expect("valid usage");
        assert_eq!(
            USER_ADD.name(&args, 0, "NAME"),
            Err(format!("missing argument NAME (usage: {})", USER_ADD.line))
        );
        let raw = strings(&[" "]);
        let args = USER_ADD.check(&raw).expect("valid usage");
        assert_eq!(
            USER_ADD.name(&args, 0, "NAME"),
            Err(format!("NAME is empty (usage: {})", USER_ADD.line))
        );
    }

    #[test]
    fn repeated_flags_keep_every_value() {
        let raw = strings(&["--group", "a", "dave", "--group=b", "--", "--group", "c"]);
        assert_eq!(USER_ADD.flag_values(&raw, "--group"), ["a", "b"]);
        assert!(USER_ADD.flag_values(&raw, "--shell").is_empty());
    }

    #[test]
    fn account_defaults_to_the_caller() {
        let raw = strings(&["ssh-ed25519", "AAAA"]);
        let args = KEY_ADD.check(&raw).expect("valid usage");
        assert_eq!(account(&args, "alice"), Ok("alice"));
        let raw = strings(&["--user", "bob", "ssh-ed25519", "AAAA"]);
        let args = KEY_ADD.check(&raw).expect("valid usage");
        assert_eq!(account(&args, "alice"), Ok("bob"));
    }

    #[test]
    fn key_lines_are_joined_with_single_spaces() {
        let raw = strings(&["ssh-ed25519", "AAAA", "dave@laptop"]);
        let args = KEY_ADD.check(&raw).expect("valid usage");
        assert_eq!(
            key_line(&KEY_ADD, &args),
            Ok("ssh-ed25519 AAAA dave@laptop".into())
        );
        // One quoted argument, or extra spaces, come out the same.
        let raw = strings(&["--user=bob", " ssh-ed25519  AAAA ", "Dave", " Example"]);
        let args = KEY_ADD.check(&raw).expect("valid usage");
        assert_eq!(
            key_line(&KEY_ADD, &args),
            Ok("ssh-ed25519 AAAA Dave Example".into())
        );
    }

    #[test]
    fn bad_key_lines() {
        let line = KEY_ADD.line;
        for (raw, err) in [
            (&[][..], "missing argument KEY"),
            (&["--user", "bob"], "missing argument KEY"),
            (&[" "], "missing argument KEY"),
            (
                &["ssh-ed25519"],
                "KEY must be an OpenSSH public key line: TYPE BASE64 [COMMENT]",
            ),
            (&["ssh-ed25519 AAAA x\nssh-rsa y"], "KEY must be a single line"),
        ] {
            let raw = strings(raw);
            let args = KEY_ADD.check(&raw).expect("valid usage");
            assert_eq!(
                key_line(&KEY_ADD, &args),
                Err(format!("{err} (usage: {line})")),
                "{raw:?}"
            );
        }
    }

    const GROUP_ADD: NameCommand<2> = NameCommand {
        line: "group-add NAME GROUP",
        names: ["NAME", "GROUP"],
        doing: "add {NAME} to group {GROUP}",
        done: "added {NAME} to group {GROUP}",
    };

    #[test]
    fn name_commands_pass_the_names_and_say_what_they_did() {
        let mut asked = None;
        let out = GROUP_ADD.run(&strings(&["dave", "developers"]), |names| {
            asked = Some(names.map(str::to_owned));
            Ok(())
        });
        assert_eq!(out, Ok("added dave to group developers".into()));
        assert_eq!(asked, Some(["dave".to_owned(), "developers".to_owned()]));
        let out = GROUP_ADD.run(&strings(&["dave", "sudo"]), |_| {
            Err(sesame_guest::HostError::Denied(
                "group sudo is not in the grant".into(),
            ))
        });
        assert_eq!(
            out,
            Err("cannot add dave to group sudo: denied: group sudo is not in the grant".into())
        );
    }

    #[test]
    fn name_commands_never_call_the_host_with_bad_arguments() {
        for (args, err) in [
            (&[][..], "missing argument NAME"),
            (&["dave"], "missing argument GROUP"),
            (&["dave", " "], "GROUP is empty"),
            (&["dave", "developers", "more"], "unexpected argument `more`"),
            (&["dave", "developers", "--force"], "unknown flag --force"),
            (&["--", "dave", "developers", "x"], "unexpected argument `x`"),
        ] {
            assert_eq!(
                GROUP_ADD.run(&strings(args), |_| panic!("the host was called")),
                Err(format!("{err} (usage: group-add NAME GROUP)")),
                "{args:?}"
            );
        }
    }

    #[test]
    fn key_summaries() {
        assert_eq!(key_summary(KEY), "ssh-ed25519 …6ELIpKiD6cti");
        assert_eq!(
            key_summary(&format!("{KEY} dave@laptop")),
            "ssh-ed25519 …6ELIpKiD6cti dave@laptop"
        );
        assert_eq!(
            key_summary(&format!("{KEY} Dave  Example")),
            "ssh-ed25519 …6ELIpKiD6cti Dave Example"
        );
        // Short or odd key data does not panic.
        assert_eq!(key_summary("ssh-rsa AAAA"), "ssh-rsa …AAAA");
        assert_eq!(key_summary("ssh-rsa ééééééééééééééé"), "ssh-rsa …éééééééééééé");
        assert_eq!(key_summary("ssh-rsa"), "ssh-rsa");
        assert_eq!(key_summary(""), "");
    }

    #[test]
    fn durations() {
        for (text, secs) in [
            ("90", 90),
            ("90s", 90),
            ("5m", 300),
            ("8h", 28_800),
            ("2d", 172_800),
        ] {
            assert_eq!(duration(text), Ok(secs), "{text}");
        }
        for bad in [
            "",
            "0",
            "0h",
            "h",
            "1w",
            "-1",
            "1.5h",
            "99999999999",
            "50000d",
            " 5m",
        ] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }
}
