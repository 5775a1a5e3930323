//! A snapshot of environment variables with typed, error-reporting accessors.

use std::collections::{BTreeSet, HashMap};
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use super::ConfigError;

/// Environment variables by name. Empty values count as unset, as most deployment tools write `VAR=` for
/// "no value". Remembers which names were looked up, so a test can prove that every variable the deployment
/// files set is one the server reads.
#[derive(Clone, Debug, Default)]
pub struct EnvMap {
    values: HashMap<String, String>,
    looked_up: Arc<Mutex<BTreeSet<String>>>,
}

impl EnvMap {
    /// The current process environment.
    pub fn from_process() -> Self {
        Self { values: std::env::vars().collect(), looked_up: Arc::default() }
    }

    /// Sets a variable (builder style, for tests).
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.values.insert(name.to_owned(), value.to_owned());
        self
    }

    /// The trimmed value, `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.looked_up.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_owned());
        self.values.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// Every name looked up so far, set or not.
    pub fn looked_up(&self) -> BTreeSet<String> {
        self.looked_up.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Parses the value with `FromStr`.
    pub fn parse<T: FromStr>(&self, name: &'static str) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .map(|raw| raw.parse::<T>().map_err(|e| ConfigError::new(name, format!("cannot parse `{raw}`: {e}"))))
            .transpose()
    }

    /// Parses an integer and checks it lies in `range`.
    pub fn parse_in_range<T>(&self, name: &'static str, range: RangeInclusive<T>) -> Result<Option<T>, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        match self.parse::<T>(name)? {
            Some(value) if !range.contains(&value) => Err(ConfigError::new(
                name,
                format!("{value} is out of range; expected {} to {}", range.start(), range.end()),
            )),
            other => Ok(other),
        }
    }

    /// Parses `true/false/1/0/yes/no/on/off`.
    pub fn parse_bool(&self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        self.get(name)
            .map(|raw| match raw.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::new(name, format!("expected true or false, got `{raw}`"))),
            })
            .transpose()
    }
}
