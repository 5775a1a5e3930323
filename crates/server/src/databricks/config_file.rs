//! Reading `~/.databrickscfg` (PROTOCOLS.md C.2): an INI file whose sections are profiles, with an optional
//! `[__settings__] default_profile`, and the choice of which profile applies.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use ini::{Ini, ParseOption};

use super::vars::Vars;

/// Variable naming the config file (default `$HOME/.databrickscfg`).
pub const ENV_CONFIG_FILE: &str = "DATABRICKS_CONFIG_FILE";
/// Variable naming the profile (section) to use.
pub const ENV_CONFIG_PROFILE: &str = "DATABRICKS_CONFIG_PROFILE";
/// The profile used when none is named anywhere.
pub const DEFAULT_PROFILE: &str = "DEFAULT";
/// Reserved section holding file-wide settings rather than a profile.
pub const SETTINGS_SECTION: &str = "__settings__";

/// Why the config file or the requested profile could not be used; never contains values from the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The file exists but could not be read.
    #[error("cannot read the Databricks config file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The file is not valid INI.
    #[error("cannot parse the Databricks config file {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (line and column).
        reason: String,
    },
    /// A profile was requested but there is no file to take it from.
    #[error(
        "profile {profile:?} was requested by {origin}, but the Databricks config file {path} does not exist; create it with `databricks auth login` or set {ENV_CONFIG_FILE}"
    )]
    FileNotFound {
        /// The requested profile.
        profile: String,
        /// Where the request came from.
        origin: String,
        /// The file looked for (or a note when no path could be built).
        path: String,
    },
    /// The requested profile is not a section of the file.
    #[error(
        "profile {profile:?} was requested by {origin}, but {path} has no such profile (profiles there: {available})"
    )]
    ProfileNotFound {
        /// The requested profile.
        profile: String,
        /// Where the request came from.
        origin: String,
        /// The file.
        path: PathBuf,
        /// Comma-separated profile names found in the file, or "none".
        available: String,
    },
}

/// One profile (section) of the config file; its values may be secrets, so Debug shows only key names.
#[derive(Clone)]
pub struct Profile {
    name: String,
    path: PathBuf,
    values: BTreeMap<String, String>,
}

impl Profile {
    /// The section name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file the profile was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A non-blank value; keys are matched case-insensitively like Python's configparser does.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(&key.to_ascii_lowercase()).map(String::as_str)
    }

    /// Describes where `key` of this profile lives, for error messages.
    pub fn describe_key(&self, key: &str) -> String {
        format!("{key} in profile [{}] of {}", self.name, self.path.display())
    }
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A parsed config file: its profiles in file order plus the `[__settings__]` section.
#[derive(Clone)]
pub struct ConfigFile {
    path: PathBuf,
    profiles: Vec<Profile>,
    settings: BTreeMap<String, String>,
}

impl fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigFile").field("path", &self.path).field("profiles", &self.profile_names()).finish()
    }
}

impl ConfigFile {
    /// Reads and parses `path`; `Ok(None)` when the file does not exist.
    pub fn load(path: &Path) -> Result<Option<Self>, ConfigFileError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ConfigFileError::Read { path: path.to_path_buf(), reason: e.to_string() }),
        }
    }

    /// Parses config text; `path` is only recorded for messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigFileError> {
        // Quotes and backslash escapes are taken literally, as Python's configparser and the Go SDK do: a secret
        // or a Windows path must survive unchanged.
        let options = ParseOption { enabled_quote: false, enabled_escape: false, ..ParseOption::default() };
        let ini = Ini::load_from_str_opt(text, options)
            .map_err(|e| ConfigFileError::Parse { path: path.to_path_buf(), reason: e.to_string() })?;
        let mut profiles: Vec<Profile> = Vec::new();
        let mut settings = BTreeMap::new();
        for (section, props) in ini.iter() {
            // Keys before the first section belong to no profile.
            let Some(section) = section else { continue };
            let values = props
                .iter()
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()));
            if section == SETTINGS_SECTION {
                settings.extend(values);
            } else if let Some(existing) = profiles.iter_mut().find(|p| p.name == section) {
                // A repeated section extends the first one; later keys win.
                existing.values.extend(values);
            } else {
                profiles.push(Profile {
                    name: section.to_string(),
                    path: path.to_path_buf(),
                    values: values.collect(),
                });
            }
        }
        Ok(Self { path: path.to_path_buf(), profiles, settings })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Profile names in file order (without `__settings__`).
    pub fn profile_names(&self) -> Vec<&str> {
        self.profiles.iter().map(|p| p.name.as_str()).collect()
    }

    /// The profile with exactly this section name.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// `[__settings__] default_profile`, if set.
    pub fn default_profile(&self) -> Option<&str> {
        self.settings.get("default_profile").map(String::as_str)
    }
}

/// The config file path: `DATABRICKS_CONFIG_FILE` (with `~/` expanded) or `$HOME/.databrickscfg`; None without HOME.
pub fn config_path(vars: &dyn Vars) -> Option<PathBuf> {
    let home = vars.var("HOME").map(PathBuf::from);
    match vars.var(ENV_CONFIG_FILE) {
        Some(file) => match (file.strip_prefix("~/"), home) {
            (Some(rest), Some(home)) => Some(home.join(rest)),
            _ => Some(PathBuf::from(file)),
        },
        None => home.map(|h| h.join(".databrickscfg")),
    }
}

/// Picks the profile per C.2: `DATABRICKS_CONFIG_PROFILE`, else `[__settings__] default_profile`, else `DEFAULT`.
///
/// A missing file or a missing `DEFAULT` section is not an error; a profile that was asked for by name is.
pub fn load_profile(vars: &dyn Vars) -> Result<Option<Profile>, ConfigFileError> {
    let explicit = vars.var(ENV_CONFIG_PROFILE);
    let Some(path) = config_path(vars) else {
        return match explicit {
            Some(profile) => Err(ConfigFileError::FileNotFound {
                profile,
                origin: ENV_CONFIG_PROFILE.to_string(),
                path: format!("(none: neither {ENV_CONFIG_FILE} nor HOME is set)"),
            }),
            None => Ok(None),
        };
    };
    let Some(file) = ConfigFile::load(&path)? else {
        return match explicit {
            Some(profile) => Err(ConfigFileError::FileNotFound {
                profile,
                origin: ENV_CONFIG_PROFILE.to_string(),
                path: path.display().to_string(),
            }),
            None => Ok(None),
        };
    };
    let (name, origin) = match (explicit, file.default_profile()) {
        (Some(name), _) => (name, Some(ENV_CONFIG_PROFILE.to_string())),
        (None, Some(name)) => {
            (name.to_string(), Some(format!("default_profile in [{SETTINGS_SECTION}] of {}", path.display())))
        }
        (None, None) => (DEFAULT_PROFILE.to_string(), None),
    };
    match (file.profile(&name), origin) {
        (Some(profile), _) => Ok(Some(profile.clone())),
        // Only a profile someone named is required to exist; an absent DEFAULT just means "no profile".
        (None, None) => Ok(None),
        (None, Some(origin)) => {
            let names = file.profile_names();
            let available = if names.is_empty() { "none".to_string() } else { names.join(", ") };
            Err(ConfigFileError::ProfileNotFound { profile: name, origin, path, available })
        }
    }
}
