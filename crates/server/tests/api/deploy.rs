//! The deployment files agree with the code: every variable `app.yaml` sets, and every variable Databricks Apps
//! injects (PROTOCOLS.md §D.1), is one the server reads at start. (`scripts/check-deploy.py` validates the
//! files' structure and `databricks.yml` against the bundle schema.)

use fake_databricks::{FakeEndpoint, FakeWorkspace};
use server::config::{Config, EnvMap};
use server::platform;

/// `name:` entries of `app.yaml`'s `env` list, with the `value` or `valueFrom` of each.
fn app_yaml_env() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../app.yaml");
    let text = std::fs::read_to_string(path).expect("read app.yaml");
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut in_env = false;
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty()) {
        if !line.starts_with(' ') && !line.starts_with('-') {
            in_env = line.trim_end() == "env:";
            continue;
        }
        let item = line.trim_start().trim_start_matches("- ");
        if !in_env {
            continue;
        }
        if let Some(name) = item.strip_prefix("name:") {
            entries.push((name.trim().trim_matches('"').to_owned(), String::new()));
        } else if let Some(value) = item.strip_prefix("valueFrom:").or_else(|| item.strip_prefix("value:")) {
            let last = entries.last_mut().expect("a value follows its name");
            last.1 = value.trim().trim_matches('"').to_owned();
        }
    }
    entries
}

#[tokio::test]
async fn every_variable_the_deployment_sets_or_the_platform_injects_is_read() {
    // Arrange: the environment of the app in Databricks Apps, resources resolved to typical values, with the
    // workspace played by the fake (the start looks up the default endpoint's task).
    let fake = FakeWorkspace::start().await;
    fake.workspace().add_client("app-sp-id", "app-sp-secret");
    fake.workspace().set_serving_endpoints(vec![FakeEndpoint::chat("databricks-claude-sonnet-4-5")]);
    let host = fake.url();
    let set_by_app_yaml = app_yaml_env();
    assert!(set_by_app_yaml.len() >= 3, "app.yaml sets its variables: {set_by_app_yaml:?}");
    let resource_value = |key: &str| match key {
        "serving-endpoint" => "databricks-claude-sonnet-4-5".to_owned(),
        "postgres" => "projects/chat/branches/production/endpoints/primary".to_owned(),
        literal => literal.to_owned(),
    };
    let injected = [
        ("DATABRICKS_APP_NAME", "databricks-chat-dev"),
        ("DATABRICKS_APP_PORT", "8000"),
        ("DATABRICKS_HOST", host.as_str()),
        ("DATABRICKS_WORKSPACE_ID", "1"),
        ("DATABRICKS_CLIENT_ID", "app-sp-id"),
        ("DATABRICKS_CLIENT_SECRET", "app-sp-secret"),
        ("PGHOST", "instance-1.database.azuredatabricks.net"),
        ("PGPORT", "5432"),
        ("PGUSER", "app-sp-id"),
        ("PGDATABASE", "databricks_postgres"),
        ("PGSSLMODE", "require"),
    ];
    let mut env = EnvMap::default();
    for (name, value) in injected {
        env = env.with(name, value);
    }
    for (name, value) in &set_by_app_yaml {
        env = env.with(name, &resource_value(value));
    }

    // Act: everything the server reads at start.
    let config = Config::from_map(&env).expect("the Apps environment is a valid configuration");
    let databricks = platform::databricks_auth(&config).expect("workspace credentials");
    assert!(databricks.is_some(), "the service principal's credentials are picked up");
    let passwords = platform::lakebase_passwords(&config, databricks.as_ref()).expect("Lakebase passwords");
    assert!(passwords.is_some(), "the database password is minted");
    platform::models(&config, databricks.as_ref()).await.expect("model setup");

    // Assert
    let read = env.looked_up();
    let unread: Vec<&str> = set_by_app_yaml.iter().map(|(n, _)| n.as_str()).filter(|n| !read.contains(*n)).collect();
    assert!(unread.is_empty(), "app.yaml sets variables the server never reads: {unread:?}");
    let ignored: Vec<&str> =
        injected.iter().map(|(n, _)| *n).filter(|n| !read.contains(*n) && *n != "DATABRICKS_WORKSPACE_ID").collect();
    assert!(ignored.is_empty(), "the server ignores variables Databricks Apps injects: {ignored:?}");
}
