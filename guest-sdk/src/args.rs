//! [`Args`]: positional arguments and `--flags` in an invocation's argument list.

use std::fmt::Display;
use std::str::FromStr;

/// A view of a command's arguments (`Invocation::args`) with the lookups simple commands need.
///
/// The rules:
/// - A token starting with `--` is a flag; everything else (including `-` and `-5`) is a
///   positional argument. A lone `--` ends the flags: every token after it is positional.
/// - A flag carries a value as `--ttl=300`. Flags declared with [`Args::value_flags`] may also
///   take it from the next token, `--ttl 300`. Any other bare flag is a switch
///   ([`Args::has_flag`]).
/// - When a flag is given twice, the last value counts.
///
/// Every error is a one-line `String`, ready to return from
/// [`Command::run`](crate::Command::run) with `?`.
///
/// ```
/// # use sesame_guest::Args;
/// let raw: Vec<String> = ["22", "--ttl", "60", "--udp"].map(String::from).into();
/// let args = Args::new(&raw).value_flags(&["--ttl"]);
/// assert_eq!(args.parse::<u16>(0, "PORT"), Ok(22));
/// assert_eq!(args.parse_flag::<u32>("--ttl"), Ok(Some(60)));
/// assert!(args.has_flag("--udp"));
/// assert_eq!(args.positional(1), None);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    args: &'a [String],
    value_flags: &'static [&'static str],
}

impl<'a> Args<'a> {
    /// Wraps `args`; no flag takes its value from the next token until
    /// [`value_flags`](Args::value_flags) says so.
    pub fn new(args: &'a [String]) -> Self {
        Self {
            args,
            value_flags: &[],
        }
    }

    /// Declares the flags (`"--ttl"`) that may take their value from the next token.
    #[must_use]
    pub fn value_flags(self, flags: &'static [&'static str]) -> Self {
        Self {
            value_flags: flags,
            ..self
        }
    }

    /// The positional arguments, in order.
    pub fn positionals(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.tokens().filter_map(|t| match t {
            Token::Positional(p) => Some(p),
            Token::Flag { .. } => None,
        })
    }

    /// The `i`-th positional argument (from 0), if there is one.
    pub fn positional(&self, i: usize) -> Option<&'a str> {
        self.positionals().nth(i)
    }

    /// The `i`-th positional argument, or `missing argument NAME`.
    pub fn required(&self, i: usize, name: &str) -> Result<&'a str, String> {
        self.positional(i)
            .ok_or_else(|| format!("missing argument {name}"))
    }

    /// The `i`-th positional argument parsed as `T`; `name` (`"PORT"`) names it in errors.
    pub fn parse<T>(&self, i: usize, name: &str) -> Result<T, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        parse_value(name, self.required(i, name)?)
    }

    /// Whether `flag` (`"--udp"`) was given, with or without a value.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.tokens()
            .any(|t| matches!(t, Token::Flag { name, .. } if name == flag))
    }

    /// The value of `flag` (`"--ttl"`): `None` when absent, an error when it is present but has
    /// no value.
    pub fn flag_value(&self, flag: &str) -> Result<Option<&'a str>, String> {
        let mut found = None;
        for t in self.tokens() {
            if let Token::Flag { name, value } = t
                && name == flag
            {
                found = Some(value.ok_or_else(|| format!("{flag} needs a value ({flag}=VALUE)"))?);
            }
        }
        Ok(found)
    }

    /// The value of `flag` parsed as `T`; `None` when the flag is absent.
    pub fn parse_flag<T>(&self, flag: &str) -> Result<Option<T>, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.flag_value(flag)?.map(|v| parse_value(flag, v)).transpose()
    }

    fn tokens(&self) -> Tokens<'a> {
        Tokens {
            rest: self.args.iter(),
            value_flags: self.value_flags,
            flags_ended: false,
        }
    }
}

/// Parses `value` as `T`; the error reads `invalid NAME `value`: reason`.
fn parse_value<T>(name: &str, value: &str) -> Result<T, String>
where
    T: FromStr,
    T::Err: Display,
{
    value
        .parse()
        .map_err(|e| format!("invalid {name} `{value}`: {e}"))
}

enum Token<'a> {
    Positional(&'a str),
    Flag { name: &'a str, value: Option<&'a str> },
}

struct Tokens<'a> {
    rest: std::slice::Iter<'a, String>,
    value_flags: &'static [&'static str],
    flags_ended: bool,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            let t = self.rest.next()?.as_str();
            if self.flags_ended || !t.starts_with("--") {
                return Some(Token::Positional(t));
            }
            if t == "--" {
                self.flags_ended = true;
                continue;
            }
            return Some(match t.split_once('=') {
                Some((name, value)) => Token::Flag {
                    name,
                    value: Some(value),
                },
                None if self.value_flags.contains(&t) => Token::Flag {
                    name: t,
                    value: self.rest.next().map(String::as_str),
                },
                None => Token::Flag { name: t, value: None },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn positionals_skip_flags_and_declared_values() {
        let raw = strings(&["a", "--x", "b", "--ttl", "60", "c", "--n=1", "-5", "-"]);
        let args = Args::new(&raw).value_flags(&["--ttl"]);
        assert_eq!(args.positionals().collect::<Vec<_>>(), ["a", "b", "c", "-5", "-"]);
        assert_eq!(args.positional(2), Some("c"));
        assert_eq!(args.positional(5), None);
    }

    #[test]
    fn undeclared_flag_is_a_switch() {
        let raw = strings(&["--ttl", "60"]);
        let args = Args::new(&raw);
        assert!(args.has_flag("--ttl"));
        assert_eq!(args.positional(0), Some("60"));
        assert_eq!(
            args.flag_value("--ttl"),
            Err("--ttl needs a value (--ttl=VALUE)".to_string())
        );
    }

    #[test]
    fn flag_values_attached_or_declared() {
        let raw = strings(&["--ttl=30", "--proto", "udp", "--empty="]);
        let args = Args::new(&raw).value_flags(&["--proto"]);
        assert_eq!(args.flag_value("--ttl"), Ok(Some("30")));
        assert_eq!(args.flag_value("--proto"), Ok(Some("udp")));
        assert_eq!(args.flag_value("--empty"), Ok(Some("")));
        assert_eq!(args.flag_value("--absent"), Ok(None));
        assert!(!args.has_flag("--absent"));
        assert!(args.has_flag("--ttl"));
    }

    #[test]
    fn declared_flag_at_the_end_has_no_value() {
        let raw = strings(&["22", "--ttl"]);
        let args = Args::new(&raw).value_flags(&["--ttl"]);
        assert_eq!(
            args.flag_value("--ttl"),
            Err("--ttl needs a value (--ttl=VALUE)".to_string())
        );
        assert_eq!(args.positional(0), Some("22"));
    }

    #[test]
    fn last_flag_wins() {
        let raw = strings(&["--ttl=1", "--ttl=2"]);
        assert_eq!(Args::new(&raw).parse_flag::<u32>("--ttl"), Ok(Some(2)));
    }

    #[test]
    fn double_dash_ends_flags() {
        let raw = strings(&["--v", "--", "--not-a-flag", "x"]);
        let args = Args::new(&raw);
        assert!(args.has_flag("--v"));
        assert!(!args.has_flag("--not-a-flag"));
        assert_eq!(args.positionals().collect::<Vec<_>>(), ["--not-a-flag", "x"]);
    }

    #[test]
    fn parse_errors_name_the_argument() {
        let raw = strings(&["abc", "--ttl=-1"]);
        let args = Args::new(&raw);
        assert_eq!(
            args.parse::<u16>(0, "PORT"),
            Err("invalid PORT `abc`: invalid digit found in string".into())
        );
        assert_eq!(args.parse::<u16>(1, "PORT"), Err("missing argument PORT".into()));
        assert_eq!(args.required(1, "USER"), Err("missing argument USER".into()));
        assert_eq!(
            args.parse_flag::<u32>("--ttl"),
            Err("invalid --ttl `-1`: invalid digit found in string".into())
        );
        assert_eq!(args.parse_flag::<u32>("--absent"), Ok(None));
        assert_eq!(Args::new(&strings(&["65535"])).parse::<u16>(0, "PORT"), Ok(65535));
    }

    #[test]
    fn empty_args() {
        let args = Args::new(&[]);
        assert_eq!(args.positional(0), None);
        assert!(!args.has_flag("--x"));
    }
}
