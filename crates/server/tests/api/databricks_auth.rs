//! Databricks unified authentication and Lakebase passwords against the fake workspace over real HTTP: every
//! credential source, precedence, forced types, refresh at expiry, clear errors.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fake_databricks::workspace::{self, CredentialTarget, FakeEndpoint, FakeIdentity, FakeWorkspaceState};
use secrecy::{ExposeSecret, SecretString};
use server::databricks::{AuthType, DatabricksAuth, LakebasePasswords, LakebaseSource, normalize_host};

/// Serialises tests that write and run stub executables: a fork in one test while another still has its script
/// open for writing would make the exec fail with ETXTBSY.
static CLI_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A uniquely named directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("chat-auth-test-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write temp file");
        path
    }

    fn path_str(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn fake() -> (Arc<FakeWorkspaceState>, String) {
    let state = FakeWorkspaceState::new();
    let (addr, _handle): (SocketAddr, _) = workspace::spawn(state.clone()).await;
    (state, format!("http://{addr}"))
}

fn resolve(vars: &HashMap<String, String>) -> DatabricksAuth {
    DatabricksAuth::from_vars(vars, reqwest::Client::new()).expect("resolve auth").expect("a host is configured")
}

fn resolve_err(vars: &HashMap<String, String>) -> String {
    match DatabricksAuth::from_vars(vars, reqwest::Client::new()) {
        Ok(auth) => panic!("expected an error, got {auth:?}"),
        Err(error) => error.to_string(),
    }
}

/// Calls SCIM `Me` on the fake with `token`; returns the status and `userName`.
async fn whoami(host: &str, token: &SecretString) -> (u16, Option<String>) {
    let response = reqwest::Client::new()
        .get(format!("{host}/api/2.0/preview/scim/v2/Me"))
        .bearer_auth(token.expose_secret())
        .send()
        .await
        .expect("call SCIM Me");
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("JSON body");
    (status, body.get("userName").and_then(|v| v.as_str()).map(str::to_string))
}

#[test]
fn host_normalisation() {
    let ok = [
        ("adb-123.7.azuredatabricks.net", "https://adb-123.7.azuredatabricks.net"),
        ("https://dbc-a1b2.cloud.databricks.com/", "https://dbc-a1b2.cloud.databricks.com"),
        ("HTTPS://DBC-A1B2.cloud.databricks.com//", "https://dbc-a1b2.cloud.databricks.com"),
        ("  dbc-a1b2.cloud.databricks.com  ", "https://dbc-a1b2.cloud.databricks.com"),
        ("https://adb-1.7.azuredatabricks.net/?o=123#browse", "https://adb-1.7.azuredatabricks.net"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("localhost:9000", "https://localhost:9000"),
        ("https://host.example.com:443", "https://host.example.com"),
    ];
    for (raw, want) in ok {
        assert_eq!(normalize_host(raw).expect(raw), want, "normalising {raw:?}");
    }
    for raw in
        ["", "   ", "ftp://files.example.com", "https://", "https:///path", "https://bad host", "https://h:99999"]
    {
        assert!(normalize_host(raw).is_err(), "{raw:?} should be rejected");
    }
    let error = normalize_host("https://user:hunter2@host.example.com").expect_err("user info is rejected");
    assert!(!error.to_string().contains("hunter2"), "{error}");
}

#[tokio::test]
async fn no_host_anywhere_is_none() {
    let empty = vars(&[]);
    assert!(DatabricksAuth::from_vars(&empty, reqwest::Client::new()).expect("no error").is_none());
    // Credentials without a host still mean "Databricks is not configured".
    let dir = TempDir::new();
    let no_host = vars(&[("DATABRICKS_TOKEN", "dapi-x"), ("HOME", &dir.path_str())]);
    assert!(DatabricksAuth::from_vars(&no_host, reqwest::Client::new()).expect("no error").is_none());
    // Blank values count as unset.
    let blank = vars(&[("DATABRICKS_HOST", "  ")]);
    assert!(DatabricksAuth::from_vars(&blank, reqwest::Client::new()).expect("no error").is_none());
}

#[tokio::test]
async fn pat_from_env() {
    let (state, host) = fake().await;
    state.add_pat("dapi-pat-1");
    state.set_identity("dapi-pat-1", FakeIdentity { user_name: "ada@example.com".into(), display_name: "Ada".into() });
    let auth = resolve(&vars(&[("DATABRICKS_HOST", &format!("{host}/")), ("DATABRICKS_TOKEN", "dapi-pat-1")]));
    assert_eq!(auth.auth_type(), AuthType::Pat);
    assert_eq!(auth.auth_type().to_string(), "pat");
    assert_eq!(auth.host(), host);
    assert_eq!(auth.profile(), None);
    let token = auth.token().await.expect("token");
    assert_eq!(token.expose_secret(), "dapi-pat-1");
    assert_eq!(whoami(&host, &token).await, (200, Some("ada@example.com".into())));
    assert!(!format!("{auth:?}").contains("dapi-pat-1"), "Debug must not show the token");
    assert_eq!(state.token_requests(), 0);
}

#[tokio::test]
async fn m2m_caches_then_refreshes_at_expiry() {
    let (state, host) = fake().await;
    state.add_client("sp-1", "secret-1");
    state.set_token_lifetime(Duration::from_secs(2));
    let auth = resolve(&vars(&[
        ("DATABRICKS_HOST", &host),
        ("DATABRICKS_CLIENT_ID", "sp-1"),
        ("DATABRICKS_CLIENT_SECRET", "secret-1"),
    ]));
    assert_eq!(auth.auth_type(), AuthType::OAuthM2m);
    assert_eq!(auth.auth_type().to_string(), "oauth-m2m");
    let first = auth.token().await.expect("first token");
    assert_eq!(whoami(&host, &first).await, (200, Some("sp-1".into())));
    let again = auth.token().await.expect("cached token");
    assert_eq!(again.expose_secret(), first.expose_secret());
    assert_eq!(state.token_requests(), 1);

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let second = auth.token().await.expect("refreshed token");
    assert_ne!(second.expose_secret(), first.expose_secret());
    assert_eq!(state.token_requests(), 2);
    assert_eq!(whoami(&host, &first).await.0, 401, "the first token has expired at the fake");
    assert_eq!(whoami(&host, &second).await.0, 200);
}

#[tokio::test]
async fn m2m_refreshes_ahead_of_expiry() {
    let (state, host) = fake().await;
    state.add_client("sp-1", "secret-1");
    // 5 s lifetime → refresh when less than 1 s (20%) remains.
    state.set_token_lifetime(Duration::from_secs(5));
    let auth = resolve(&vars(&[
        ("DATABRICKS_HOST", &host),
        ("DATABRICKS_CLIENT_ID", "sp-1"),
        ("DATABRICKS_CLIENT_SECRET", "secret-1"),
    ]));
    let first = auth.token().await.expect("first token");
    tokio::time::sleep(Duration::from_millis(4400)).await;
    let second = auth.token().await.expect("refreshed token");
    assert_ne!(second.expose_secret(), first.expose_secret());
    assert_eq!(whoami(&host, &first).await.0, 200, "the refresh happened while the old token was still valid");
}

#[tokio::test]
async fn concurrent_token_calls_share_one_request() {
    let (state, host) = fake().await;
    state.add_client("sp-1", "secret-1");
    // A slow endpoint makes all 20 callers arrive while the first refresh is still in flight.
    state.set_token_delay(Duration::from_millis(300));
    let auth = resolve(&vars(&[
        ("DATABRICKS_HOST", &host),
        ("DATABRICKS_CLIENT_ID", "sp-1"),
        ("DATABRICKS_CLIENT_SECRET", "secret-1"),
    ]));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.token().await.map(|t| t.expose_secret().to_string()) })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.expect("task").expect("token"));
    }
    assert!(tokens.iter().all(|t| t == &tokens[0]), "all callers got the same token");
    assert_eq!(state.token_requests(), 1);
}

#[tokio::test]
async fn failed_refresh_keeps_the_still_valid_token() {
    let (state, host) = fake().await;
    state.add_client("sp-1", "secret-1");
    state.set_token_lifetime(Duration::from_secs(5));
    let auth = resolve(&vars(&[
        ("DATABRICKS_HOST", &host),
        ("DATABRICKS_CLIENT_ID", "sp-1"),
        ("DATABRICKS_CLIENT_SECRET", "secret-1"),
    ]));
    let first = auth.token().await.expect("first token");
    state.remove_client("sp-1");
    tokio::time::sleep(Duration::from_millis(4400)).await;
    let kept = auth.token().await.expect("old token while still valid");
    assert_eq!(kept.expose_secret(), first.expose_secret());
    assert_eq!(state.token_requests(), 2, "a refresh was attempted");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let error = auth.token().await.expect_err("no valid token remains").to_string();
    assert!(error.contains("refused the client credentials"), "{error}");
}

#[tokio::test]
async fn bad_client_credentials_give_a_clear_error() {
    let (state, host) = fake().await;
    state.add_client("sp-1", "right-secret");
    let auth = resolve(&vars(&[
        ("DATABRICKS_HOST", &host),
        ("DATABRICKS_CLIENT_ID", "sp-1"),
        ("DATABRICKS_CLIENT_SECRET", "wrong-secret"),
    ]));
    let error = auth.token().await.expect_err("refused").to_string();
    assert_eq!(
        error,
        format!(
            "oauth-m2m: the token endpoint {host}/oidc/v1/token refused the client credentials (401 invalid_client); \
             check DATABRICKS_CLIENT_ID / DATABRICKS_CLIENT_SECRET"
        )
    );
    assert!(!error.contains("wrong-secret"));

    // Nothing listens on port 1 of the loopback: the error names the endpoint and what to check.
    let unreachable = resolve(&vars(&[
        ("DATABRICKS_HOST", "http://127.0.0.1:1"),
        ("DATABRICKS_CLIENT_ID", "sp-1"),
        ("DATABRICKS_CLIENT_SECRET", "right-secret"),
    ]));
    let error = unreachable.token().await.expect_err("unreachable").to_string();
    assert!(error.starts_with("oauth-m2m: the token endpoint http://127.0.0.1:1/oidc/v1/token could not be reached"));
    assert!(error.ends_with("check DATABRICKS_HOST"), "{error}");
}

#[tokio::test]
async fn profile_with_token() {
    let (state, host) = fake().await;
    state.add_pat("dapi-file");
    let home = TempDir::new();
    home.write(".databrickscfg", &format!("[DEFAULT]\nhost = {host}/\ntoken = dapi-file\n"));
    let auth = resolve(&vars(&[("HOME", &home.path_str())]));
    assert_eq!(auth.auth_type(), AuthType::Pat);
    assert_eq!(auth.profile(), Some("DEFAULT"));
    assert_eq!(auth.host(), host);
    assert_eq!(auth.token().await.expect("token").expose_secret(), "dapi-file");
}

#[tokio::test]
async fn profile_with_client_credentials() {
    let (state, host) = fake().await;
    state.add_client("sp-file", "secret-file");
    let dir = TempDir::new();
    let file = dir.write(
        "cfg",
        &format!(
            "[DEFAULT]\nhost = https://other.example.com\ntoken = dapi-other\n\n\
             [sp]\nhost          = {host}\nclient_id     = sp-file\nclient_secret = secret-file\n"
        ),
    );
    let auth =
        resolve(&vars(&[("DATABRICKS_CONFIG_FILE", &file.display().to_string()), ("DATABRICKS_CONFIG_PROFILE", "sp")]));
    assert_eq!(auth.auth_type(), AuthType::OAuthM2m);
    assert_eq!(auth.profile(), Some("sp"));
    let token = auth.token().await.expect("token");
    assert_eq!(whoami(&host, &token).await, (200, Some("sp-file".into())));

    // A wrong secret in the profile points at the profile, not at env variables.
    let bad = dir.write("bad", &format!("[sp]\nhost = {host}\nclient_id = sp-file\nclient_secret = nope\n"));
    let auth =
        resolve(&vars(&[("DATABRICKS_CONFIG_FILE", &bad.display().to_string()), ("DATABRICKS_CONFIG_PROFILE", "sp")]));
    let error = auth.token().await.expect_err("refused").to_string();
    assert!(
        error.contains(&format!("check client_id / client_secret in profile [sp] of {}", bad.display())),
        "{error}"
    );
}

#[tokio::test]
async fn settings_default_profile_is_used() {
    let (state, host) = fake().await;
    state.add_pat("dapi-dev");
    let home = TempDir::new();
    home.write(
        ".databrickscfg",
        &format!(
            "[__settings__]\ndefault_profile = dev\n\n\
             [DEFAULT]\nhost = https://wrong.example.com\ntoken = dapi-wrong\n\n\
             [dev]\nhost = {host}\ntoken = dapi-dev\n"
        ),
    );
    let auth = resolve(&vars(&[("HOME", &home.path_str())]));
    assert_eq!(auth.profile(), Some("dev"));
    assert_eq!(auth.host(), host);
    assert_eq!(auth.token().await.expect("token").expose_secret(), "dapi-dev");

    // A default_profile naming a missing section is an error, not a silent fallback to DEFAULT.
    home.write(".databrickscfg", "[__settings__]\ndefault_profile = gone\n\n[DEFAULT]\nhost = h.example.com\n");
    let error = resolve_err(&vars(&[("HOME", &home.path_str())]));
    assert!(error.contains("\"gone\"") && error.contains("default_profile"), "{error}");
}

#[tokio::test]
async fn env_host_overrides_profile_host() {
    let (state, host) = fake().await;
    state.add_pat("dapi-file");
    let home = TempDir::new();
    home.write(".databrickscfg", "[DEFAULT]\nhost = https://profile-host.example.com\ntoken = dapi-file\n");
    let auth = resolve(&vars(&[("HOME", &home.path_str()), ("DATABRICKS_HOST", &host)]));
    assert_eq!(auth.host(), host);
    assert_eq!(auth.auth_type(), AuthType::Pat);
    let token = auth.token().await.expect("token");
    assert_eq!(whoami(&host, &token).await.0, 200);
}

#[tokio::test]
async fn env_pat_wins_over_profile_client_credentials() {
    let (state, host) = fake().await;
    state.add_pat("dapi-env");
    state.add_client("sp-file", "secret-file");
    let home = TempDir::new();
    home.write(
        ".databrickscfg",
        &format!("[DEFAULT]\nhost = {host}\nclient_id = sp-file\nclient_secret = secret-file\n"),
    );
    let auth = resolve(&vars(&[("HOME", &home.path_str()), ("DATABRICKS_TOKEN", "dapi-env")]));
    assert_eq!(auth.auth_type(), AuthType::Pat);
    assert_eq!(auth.host(), host, "host still comes from the profile");
    assert_eq!(auth.token().await.expect("token").expose_secret(), "dapi-env");
    assert_eq!(state.token_requests(), 0);
}

#[tokio::test]
async fn auth_type_forces_a_type() {
    let (state, host) = fake().await;
    state.add_pat("dapi-env");
    state.add_client("sp-1", "secret-1");
    let both = [
        ("DATABRICKS_HOST", host.as_str()),
        ("DATABRICKS_TOKEN", "dapi-env"),
        ("DATABRICKS_CLIENT_ID", "sp-1"),
        ("DATABRICKS_CLIENT_SECRET", "secret-1"),
    ];
    assert_eq!(resolve(&vars(&both)).auth_type(), AuthType::Pat, "without forcing, PAT comes first");
    let mut forced = vars(&both);
    forced.insert("DATABRICKS_AUTH_TYPE".into(), "oauth-m2m".into());
    let auth = resolve(&forced);
    assert_eq!(auth.auth_type(), AuthType::OAuthM2m);
    auth.token().await.expect("token");
    assert_eq!(state.token_requests(), 1);

    // A profile's auth_type forces the type among the profile's credentials.
    let home = TempDir::new();
    home.write(
        ".databrickscfg",
        &format!(
            "[DEFAULT]\nhost = {host}\ntoken = dapi-env\nclient_id = sp-1\nclient_secret = secret-1\n\
             auth_type = oauth-m2m\n"
        ),
    );
    assert_eq!(resolve(&vars(&[("HOME", &home.path_str())])).auth_type(), AuthType::OAuthM2m);
}

#[tokio::test]
async fn forced_auth_type_without_credentials_errors() {
    let error = resolve_err(&vars(&[
        ("DATABRICKS_HOST", "https://h.example.com"),
        ("DATABRICKS_AUTH_TYPE", "pat"),
        ("DATABRICKS_CLIENT_ID", "sp-1"),
        ("DATABRICKS_CLIENT_SECRET", "secret-1"),
    ]));
    assert_eq!(
        error,
        "pat: selected by DATABRICKS_AUTH_TYPE, but these are not set: DATABRICKS_TOKEN (or token in the profile)"
    );
    let error = resolve_err(&vars(&[
        ("DATABRICKS_HOST", "https://h.example.com"),
        ("DATABRICKS_AUTH_TYPE", "oauth-m2m"),
        ("DATABRICKS_CLIENT_ID", "sp-1"),
    ]));
    assert!(error.starts_with("oauth-m2m: selected by DATABRICKS_AUTH_TYPE"), "{error}");
    assert!(error.contains("DATABRICKS_CLIENT_SECRET") && !error.contains("DATABRICKS_CLIENT_ID"), "{error}");
    let error = resolve_err(&vars(&[("DATABRICKS_HOST", "h.example.com"), ("DATABRICKS_AUTH_TYPE", "basic")]));
    assert!(error.contains("DATABRICKS_AUTH_TYPE is \"basic\""), "{error}");
    let error = resolve_err(&vars(&[("DATABRICKS_HOST", "h.example.com")]));
    assert!(error.starts_with("no Databricks credentials found for https://h.example.com"), "{error}");
    let error = resolve_err(&vars(&[("DATABRICKS_HOST", "ftp://h.example.com"), ("DATABRICKS_TOKEN", "x")]));
    assert!(error.starts_with("DATABRICKS_HOST: \"ftp://h.example.com\" is not a valid"), "{error}");
}

#[tokio::test]
async fn missing_named_profile_lists_available_profiles() {
    let dir = TempDir::new();
    let file =
        dir.write("cfg", "[DEFAULT]\nhost = a.example.com\ntoken = t\n\n[dev]\nhost = b.example.com\ntoken = u\n");
    let error = resolve_err(&vars(&[
        ("DATABRICKS_CONFIG_FILE", &file.display().to_string()),
        ("DATABRICKS_CONFIG_PROFILE", "prod"),
    ]));
    assert_eq!(
        error,
        format!(
            "profile \"prod\" was requested by DATABRICKS_CONFIG_PROFILE, but {} has no such profile \
             (profiles there: DEFAULT, dev)",
            file.display()
        )
    );
    // A missing file is fine unless a profile was requested.
    let absent = dir.path().join("absent");
    let absent_str = absent.display().to_string();
    assert!(
        DatabricksAuth::from_vars(&vars(&[("DATABRICKS_CONFIG_FILE", &absent_str)]), reqwest::Client::new())
            .expect("no error")
            .is_none()
    );
    let error = resolve_err(&vars(&[("DATABRICKS_CONFIG_FILE", &absent_str), ("DATABRICKS_CONFIG_PROFILE", "dev")]));
    assert!(error.contains(&absent_str) && error.contains("does not exist"), "{error}");
}

/// Writes an executable stub `databricks` into `dir` that logs its arguments and runs `body`.
fn write_stub(dir: &TempDir, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let log = dir.path().join("calls.log");
    let script = format!("#!/bin/sh\necho \"$*\" >> '{}'\n{body}\n", log.display());
    let path = dir.write("databricks", &script);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod stub");
    log
}

#[tokio::test]
async fn databricks_cli_profile_uses_the_stub() {
    let _serial = CLI_LOCK.lock().await;
    let bin = TempDir::new();
    let expiry = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    assert!(expiry.contains('.') && expiry.len() > 28, "expiry has nanoseconds: {expiry}");
    let log = write_stub(
        &bin,
        &format!(
            "printf '%s\\n' '{{\"access_token\":\"cli-token-1\",\"token_type\":\"Bearer\",\"expiry\":\"{expiry}\"}}'"
        ),
    );
    let home = TempDir::new();
    home.write(".databrickscfg", "[dev]\nhost = https://adb-1.7.azuredatabricks.net\nauth_type = databricks-cli\n");
    let path = format!("{}:{}", bin.path_str(), std::env::var("PATH").unwrap_or_default());
    let auth = resolve(&vars(&[("HOME", &home.path_str()), ("DATABRICKS_CONFIG_PROFILE", "dev"), ("PATH", &path)]));
    assert_eq!(auth.auth_type(), AuthType::DatabricksCli);
    assert_eq!(auth.auth_type().to_string(), "databricks-cli");
    assert_eq!(auth.profile(), Some("dev"));
    assert_eq!(auth.token().await.expect("token").expose_secret(), "cli-token-1");
    assert_eq!(auth.token().await.expect("cached token").expose_secret(), "cli-token-1");
    let calls = std::fs::read_to_string(&log).expect("stub log");
    assert_eq!(calls, "auth token --profile dev\n", "called once, with the profile");
}

#[tokio::test]
async fn databricks_cli_by_host_and_failures() {
    let _serial = CLI_LOCK.lock().await;
    let bin = TempDir::new();
    let log = write_stub(
        &bin,
        "echo 'Error: cache: databricks OAuth is not configured for this host' >&2\necho detail >&2\nexit 1",
    );
    let path = format!("{}:{}", bin.path_str(), std::env::var("PATH").unwrap_or_default());
    let auth = resolve(&vars(&[
        ("DATABRICKS_HOST", "adb-1.7.azuredatabricks.net"),
        ("DATABRICKS_AUTH_TYPE", "databricks-cli"),
        ("PATH", &path),
    ]));
    let error = auth.token().await.expect_err("CLI fails").to_string();
    assert!(
        error.starts_with("databricks-cli: `databricks auth token --host https://adb-1.7.azuredatabricks.net` failed")
    );
    assert!(
        error.contains("Error: cache: databricks OAuth is not configured for this host") && !error.contains("detail")
    );
    assert!(error.ends_with("run `databricks auth login --host https://adb-1.7.azuredatabricks.net`"), "{error}");
    assert_eq!(std::fs::read_to_string(&log).expect("log"), "auth token --host https://adb-1.7.azuredatabricks.net\n");

    let missing = bin.path().join("no-such-cli").display().to_string();
    let auth = resolve(&vars(&[
        ("DATABRICKS_HOST", "adb-1.7.azuredatabricks.net"),
        ("DATABRICKS_AUTH_TYPE", "databricks-cli"),
        ("DATABRICKS_CLI_PATH", &missing),
    ]));
    let error = auth.token().await.expect_err("CLI missing").to_string();
    assert!(error.contains(&missing) && error.contains("databricks auth login --host"), "{error}");

    let empty = TempDir::new();
    let auth = resolve(&vars(&[
        ("DATABRICKS_HOST", "adb-1.7.azuredatabricks.net"),
        ("DATABRICKS_AUTH_TYPE", "databricks-cli"),
        ("PATH", &empty.path_str()),
    ]));
    let error = auth.token().await.expect_err("not on PATH").to_string();
    assert!(error.contains("was not found on PATH"), "{error}");
}

async fn lakebase_setup() -> (Arc<FakeWorkspaceState>, String, DatabricksAuth) {
    let (state, host) = fake().await;
    state.add_client("sp-1", "secret-1");
    state.add_postgres_endpoint("projects/p/branches/production/endpoints/primary");
    state.add_database_instance("my-instance");
    let auth = resolve(&vars(&[
        ("DATABRICKS_HOST", &host),
        ("DATABRICKS_CLIENT_ID", "sp-1"),
        ("DATABRICKS_CLIENT_SECRET", "secret-1"),
    ]));
    (state, host, auth)
}

#[test]
fn lakebase_source_from_vars() {
    let endpoint = "projects/p/branches/b/endpoints/e";
    assert_eq!(
        LakebasePasswords::source_from_vars(&vars(&[("LAKEBASE_ENDPOINT", endpoint), ("LAKEBASE_INSTANCE", "i")])),
        LakebaseSource::Autoscaling { endpoint: endpoint.into() }
    );
    assert_eq!(
        LakebasePasswords::source_from_vars(&vars(&[("LAKEBASE_INSTANCE", "i"), ("DATABASE_INSTANCE_NAME", "j")])),
        LakebaseSource::Provisioned { instance: "i".into() }
    );
    assert_eq!(
        LakebasePasswords::source_from_vars(&vars(&[("DATABASE_INSTANCE_NAME", "j")])),
        LakebaseSource::Provisioned { instance: "j".into() }
    );
    assert_eq!(
        LakebasePasswords::source_from_vars(&vars(&[("LAKEBASE_ENDPOINT", " ")])),
        LakebaseSource::WorkspaceToken
    );
}

#[tokio::test]
async fn lakebase_autoscaling_mints_caches_and_invalidates() {
    let (state, _host, auth) = lakebase_setup().await;
    let endpoint = "projects/p/branches/production/endpoints/primary";
    let passwords = LakebasePasswords::new(auth, LakebaseSource::Autoscaling { endpoint: endpoint.into() });
    let first = passwords.password().await.expect("password");
    let again = passwords.password().await.expect("cached password");
    assert_eq!(first.expose_secret(), again.expose_secret());
    let minted = state.minted_credentials();
    assert_eq!(minted.len(), 1, "the second call did not mint");
    assert_eq!(minted[0].target, CredentialTarget::Autoscaling { endpoint: endpoint.into() });
    assert_eq!(minted[0].token, first.expose_secret());
    assert_eq!(minted[0].caller, "sp-1");
    assert!(state.is_valid_credential(first.expose_secret()));

    passwords.invalidate();
    let second = passwords.password().await.expect("new password");
    assert_ne!(second.expose_secret(), first.expose_secret());
    assert_eq!(state.minted_credentials().len(), 2);
    assert_eq!(state.token_requests(), 1, "the workspace token was reused");
}

#[tokio::test]
async fn lakebase_provisioned_sends_a_uuid_request_id() {
    let (state, _host, auth) = lakebase_setup().await;
    let passwords = LakebasePasswords::new(auth, LakebaseSource::Provisioned { instance: "my-instance".into() });
    let password = passwords.password().await.expect("password");
    passwords.invalidate();
    passwords.password().await.expect("second password");
    let minted = state.minted_credentials();
    assert_eq!(minted.len(), 2);
    assert_eq!(minted[0].token, password.expose_secret());
    let mut ids = Vec::new();
    for credential in &minted {
        let CredentialTarget::Provisioned { instance_names, request_id } = &credential.target else {
            panic!("expected a provisioned credential, got {:?}", credential.target);
        };
        assert_eq!(instance_names, &vec!["my-instance".to_string()]);
        let id = uuid::Uuid::parse_str(request_id).expect("request_id is a UUID");
        assert_eq!(id.get_version_num(), 4);
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "each request has its own request_id");
}

#[tokio::test]
async fn lakebase_remints_at_expiry() {
    let (state, _host, auth) = lakebase_setup().await;
    state.set_credential_lifetime(Duration::from_secs(2));
    let passwords = LakebasePasswords::new(auth, LakebaseSource::Provisioned { instance: "my-instance".into() });
    let first = passwords.password().await.expect("password");
    passwords.password().await.expect("cached password");
    assert_eq!(state.minted_credentials().len(), 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let second = passwords.password().await.expect("re-minted password");
    assert_ne!(second.expose_secret(), first.expose_secret());
    assert_eq!(state.minted_credentials().len(), 2);
}

#[tokio::test]
async fn lakebase_errors_carry_the_databricks_error() {
    let (state, host, auth) = lakebase_setup().await;
    let passwords = LakebasePasswords::new(
        auth,
        LakebaseSource::Autoscaling { endpoint: "projects/x/branches/y/endpoints/z".into() },
    );
    let error = passwords.password().await.expect_err("unknown endpoint").to_string();
    assert_eq!(
        error,
        format!(
            "lakebase: POST {host}/api/2.0/postgres/credentials failed (404 RESOURCE_DOES_NOT_EXIST): Endpoint \
             'projects/x/branches/y/endpoints/z' does not exist.; \
             check LAKEBASE_ENDPOINT=\"projects/x/branches/y/endpoints/z\" \
             and the app's access to that endpoint"
        )
    );
    assert!(state.minted_credentials().is_empty());
}

#[tokio::test]
async fn lakebase_recovers_from_a_revoked_workspace_token() {
    let (state, _host, auth) = lakebase_setup().await;
    let passwords =
        LakebasePasswords::new(auth.clone(), LakebaseSource::Provisioned { instance: "my-instance".into() });
    let old_token = auth.token().await.expect("workspace token");
    state.revoke_tokens();
    passwords.password().await.expect("minted after re-authenticating");
    assert_eq!(state.token_requests(), 2, "the 401 made the auth cache fetch a new workspace token");
    assert_ne!(auth.token().await.expect("token").expose_secret(), old_token.expose_secret());
}

#[tokio::test]
async fn lakebase_workspace_token_source() {
    let (state, host, auth) = lakebase_setup().await;
    let passwords = LakebasePasswords::new(auth.clone(), LakebaseSource::WorkspaceToken);
    let password = passwords.password().await.expect("password");
    assert_eq!(password.expose_secret(), auth.token().await.expect("token").expose_secret());
    assert!(state.minted_credentials().is_empty());
    passwords.invalidate();
    let next = passwords.password().await.expect("password after invalidate");
    assert_ne!(next.expose_secret(), password.expose_secret(), "invalidate also refreshes the workspace token");
    assert_eq!(state.token_requests(), 2);

    // A PAT is used as is.
    state.add_pat("dapi-pg");
    let pat = resolve(&vars(&[("DATABRICKS_HOST", &host), ("DATABRICKS_TOKEN", "dapi-pg")]));
    let passwords = LakebasePasswords::new(pat, LakebaseSource::WorkspaceToken);
    assert_eq!(passwords.password().await.expect("password").expose_secret(), "dapi-pg");
}

#[tokio::test]
async fn fake_workspace_routes() {
    let (state, host) = fake().await;
    state.add_pat("dapi-1");
    state.set_serving_endpoints(vec![
        FakeEndpoint::chat("databricks-claude").with_description("Claude"),
        FakeEndpoint::new("embed", "llm/v1/embeddings"),
        FakeEndpoint::new("agent", "agent/v2/chat").not_ready(),
    ]);
    let http = reqwest::Client::new();
    let list: serde_json::Value = http
        .get(format!("{host}/api/2.0/serving-endpoints"))
        .bearer_auth("dapi-1")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let endpoints = list["endpoints"].as_array().expect("endpoints array");
    assert_eq!(endpoints.len(), 3);
    assert_eq!(endpoints[0]["task"], "llm/v1/chat");
    assert_eq!(endpoints[0]["state"]["ready"], "READY");
    assert_eq!(endpoints[0]["state"]["config_update"], "NOT_UPDATING");
    assert_eq!(endpoints[0]["description"], "Claude");
    assert_eq!(endpoints[2]["state"]["ready"], "NOT_READY");
    assert!(endpoints[1]["creator"].is_string() && endpoints[1]["creation_timestamp"].is_i64());

    let one =
        http.get(format!("{host}/api/2.0/serving-endpoints/embed")).bearer_auth("dapi-1").send().await.expect("get");
    assert_eq!(one.status(), 200);
    assert_eq!(one.json::<serde_json::Value>().await.expect("json")["name"], "embed");
    let missing =
        http.get(format!("{host}/api/2.0/serving-endpoints/nope")).bearer_auth("dapi-1").send().await.expect("get");
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<serde_json::Value>().await.expect("json")["error_code"], "RESOURCE_DOES_NOT_EXIST");

    let anonymous = http.get(format!("{host}/api/2.0/serving-endpoints")).send().await.expect("list");
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.json::<serde_json::Value>().await.expect("json")["error_code"], "UNAUTHENTICATED");

    let other_grant = http
        .post(format!("{host}/oidc/v1/token"))
        .form(&[("grant_type", "authorization_code")])
        .send()
        .await
        .expect("token");
    assert_eq!(other_grant.status(), 400);
    let bad_body = http
        .post(format!("{host}/api/2.0/database/credentials"))
        .bearer_auth("dapi-1")
        .json(&serde_json::json!({"instance_names": ["x"], "request_id": "not-a-uuid"}))
        .send()
        .await
        .expect("credentials");
    assert_eq!(bad_body.status(), 400);
}

#[test]
fn token_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let auth = DatabricksAuth::from_vars(
        &vars(&[("DATABRICKS_HOST", "h.example.com"), ("DATABRICKS_TOKEN", "t")]),
        reqwest::Client::new(),
    )
    .expect("resolve")
    .expect("host");
    assert_send(&auth.token());
    let passwords = LakebasePasswords::new(auth, LakebaseSource::WorkspaceToken);
    assert_send(&passwords.password());
}

#[test]
fn config_file_parsing() {
    use server::databricks::ConfigFile;
    let path = Path::new("/cfg");
    let file = ConfigFile::parse(
        path,
        "top = ignored\n[DEFAULT]\nHost = h.example.com\ntoken = \"dapi\\x\"\n\n\
         [__settings__]\ndefault_profile = dev\n\n\
         [dev]\nhost: d.example.com\nclient_id = \n[dev]\ntoken = later\n",
    )
    .expect("parses");
    assert_eq!(file.profile_names(), vec!["DEFAULT", "dev"], "__settings__ is not a profile; repeats merge");
    assert_eq!(file.default_profile(), Some("dev"));
    let default = file.profile("DEFAULT").expect("DEFAULT");
    assert_eq!(default.get("host"), Some("h.example.com"), "keys are case-insensitive");
    assert_eq!(default.get("token"), Some("\"dapi\\x\""), "quotes and backslashes are literal");
    assert!(!format!("{default:?}").contains("dapi"), "Debug shows keys only");
    let dev = file.profile("dev").expect("dev");
    assert_eq!((dev.get("host"), dev.get("client_id"), dev.get("token")), (Some("d.example.com"), None, Some("later")));

    let error = ConfigFile::parse(path, "[DEFAULT]\ntoken = dapi-secret\nthis line has no separator\n")
        .expect_err("malformed")
        .to_string();
    assert!(error.starts_with("cannot parse the Databricks config file /cfg"), "{error}");
    assert!(!error.contains("dapi-secret"), "{error}");
}
