use super::*;

fn base() -> EnvMap {
    EnvMap::default().with("USER", "alice")
}

#[test]
fn local_defaults_need_no_variables() {
    let config = Config::from_map(&base()).expect("valid");
    assert_eq!(config.http.bind, "127.0.0.1:8000".parse().expect("addr"));
    assert_eq!(config.database.source, DatabaseSource::LocalDefault);
    assert!(config.database.create_if_missing);
    assert_eq!(config.database.connect.get_database(), Some(LOCAL_DATABASE_NAME));
    assert_eq!(config.identity, IdentityConfig::LocalUser { email: "dev@localhost".into() });
}

#[test]
fn apps_port_wins_over_port_and_apps_binds_all_interfaces() {
    let env = base().with("DATABRICKS_APP_NAME", "chat").with("DATABRICKS_APP_PORT", "8080").with("PORT", "9000");
    let config = Config::from_map(&env).expect("valid");
    assert_eq!(config.http.bind, "0.0.0.0:8080".parse().expect("addr"));
    assert_eq!(config.identity, IdentityConfig::DatabricksApps);
}

#[test]
fn port_is_used_outside_apps() {
    let config = Config::from_map(&base().with("PORT", "9000")).expect("valid");
    assert_eq!(config.http.bind.port(), 9000);
}

#[test]
fn libpq_variables_are_used_without_database_url() {
    let env = base()
        .with("PGHOST", "instance.database.cloud.databricks.com")
        .with("PGPORT", "5433")
        .with("PGUSER", "sp-client-id")
        .with("PGDATABASE", "databricks_postgres")
        .with("PGSSLMODE", "require");
    let config = Config::from_map(&env).expect("valid");
    assert_eq!(config.database.source, DatabaseSource::LibpqEnv);
    assert!(!config.database.create_if_missing);
    assert_eq!(config.database.connect.get_host(), "instance.database.cloud.databricks.com");
    assert_eq!(config.database.connect.get_port(), 5433);
    assert_eq!(config.database.connect.get_username(), "sp-client-id");
    assert!(matches!(config.database.connect.get_ssl_mode(), PgSslMode::Require));
}

#[test]
fn database_url_wins_over_libpq_variables() {
    let env = base().with("DATABASE_URL", "postgres://bob@db.example:6000/chats").with("PGHOST", "ignored");
    let config = Config::from_map(&env).expect("valid");
    assert_eq!(config.database.source, DatabaseSource::Url);
    assert_eq!(config.database.connect.get_host(), "db.example");
}

#[test]
fn malformed_values_name_the_variable() {
    let cases = [
        base().with("PORT", "eighty"),
        base().with("DATABRICKS_APP_PORT", "70000"),
        base().with("DATABASE_URL", "mysql://nope"),
        base().with("PGHOST", "h").with("PGDATABASE", "d"),
        base().with("PGHOST", "h").with("PGUSER", "u").with("PGDATABASE", "d").with("PGSSLMODE", "sometimes"),
        base().with("TRUST_FORWARDED_HEADERS", "maybe"),
        base().with("LOG_FORMAT", "xml"),
        base().with("REQUEST_TIMEOUT_SECS", "0"),
    ];
    let expected = [
        "PORT",
        "DATABRICKS_APP_PORT",
        "DATABASE_URL",
        "PGUSER",
        "PGSSLMODE",
        "TRUST_FORWARDED_HEADERS",
        "LOG_FORMAT",
        "REQUEST_TIMEOUT_SECS",
    ];
    for (env, var) in cases.iter().zip(expected) {
        match Config::from_map(env) {
            Err(error) => assert_eq!(error.var, var, "{error}"),
            Ok(_) => panic!("{var} should have been rejected"),
        }
    }
}

#[test]
fn trusted_headers_mode_is_opt_in() {
    let config = Config::from_map(&base().with("TRUST_FORWARDED_HEADERS", "true")).expect("valid");
    assert_eq!(config.identity, IdentityConfig::TrustedHeaders);
}

#[test]
fn blank_values_count_as_unset() {
    let config = Config::from_map(&base().with("PORT", "  ").with("DATABASE_URL", "")).expect("valid");
    assert_eq!(config.http.bind.port(), 8000);
    assert_eq!(config.database.source, DatabaseSource::LocalDefault);
}

#[test]
fn model_settings_are_validated() {
    let bad_url = Config::from_map(&base().with("LLM_BASE_URL", "ftp://x").with("LLM_ENDPOINT", "m"));
    assert_eq!(bad_url.err().map(|e| e.var), Some("LLM_BASE_URL"));
    let bad_auth = Config::from_map(&base().with("MODEL_AUTH", "robot"));
    assert_eq!(bad_auth.err().map(|e| e.var), Some("MODEL_AUTH"));
    let user = Config::from_map(&base().with("MODEL_AUTH", "User")).expect("valid");
    assert_eq!(user.models.auth, ModelAuth::User);
}

#[test]
fn the_default_model_comes_from_the_first_endpoint_variable_set() {
    let env = base()
        .with("LLM_BASE_URL", "https://example.cloud.databricks.com/serving-endpoints/")
        .with("LLM_ENDPOINT", "third")
        .with("DATABRICKS_ENDPOINT", "second");
    let config = Config::from_map(&env).expect("valid");
    assert_eq!(config.models.default_model.as_deref(), Some("second"));
    assert_eq!(config.models.base_url.as_deref(), Some("https://example.cloud.databricks.com/serving-endpoints"));
    let env = env.with("DATABRICKS_SERVING_ENDPOINT", "first");
    assert_eq!(Config::from_map(&env).expect("valid").models.default_model.as_deref(), Some("first"));
}

#[test]
fn sampling_settings_are_validated() {
    let env = base().with("LLM_BASE_URL", "http://h/v1").with("LLM_ENDPOINT", "m");
    assert_eq!(
        Config::from_map(&env.clone().with("LLM_TEMPERATURE", "3")).err().map(|e| e.var),
        Some("LLM_TEMPERATURE")
    );
    assert_eq!(Config::from_map(&env.clone().with("LLM_MAX_TOKENS", "0")).err().map(|e| e.var), Some("LLM_MAX_TOKENS"));
    let config = Config::from_map(&env.with("LLM_TEMPERATURE", "0.2").with("LLM_MAX_TOKENS", "512")).expect("valid");
    assert_eq!(config.models.temperature, Some(0.2));
    assert_eq!(config.models.max_tokens, Some(512));
}

#[test]
fn app_agents_are_id_url_pairs() {
    let env = base().with(
        "CHAT_AGENTS",
        " research = https://research-agent-1.aws.databricksapps.com/ , dev=http://localhost:8001",
    );
    let agents = Config::from_map(&env).expect("valid").models.agents;
    assert_eq!(
        agents,
        vec![
            AppAgentConfig { id: "research".into(), url: "https://research-agent-1.aws.databricksapps.com".into() },
            AppAgentConfig { id: "dev".into(), url: "http://localhost:8001".into() },
        ]
    );
    for bad in ["research", "=https://x", "a=ftp://x", "a=https://x?q=1", "a=https://x,a=https://y", "a=not a url"] {
        let error = Config::from_map(&base().with("CHAT_AGENTS", bad)).err().expect(bad);
        assert_eq!(error.var, "CHAT_AGENTS", "{bad}");
    }
}

#[test]
fn mlflow_feedback_follows_the_experiment_unless_switched_explicitly() {
    let off = Config::from_map(&base()).expect("valid").feedback;
    assert!(!off.mlflow_requested());
    assert_eq!(off.retry_base, Duration::from_secs(10));
    let experiment = base().with("MLFLOW_EXPERIMENT_ID", "1234");
    let on = Config::from_map(&experiment).expect("valid").feedback;
    assert!(on.mlflow_requested());
    assert_eq!(on.experiment_id.as_deref(), Some("1234"));
    let switched_off = Config::from_map(&experiment.with("MLFLOW_FEEDBACK", "false")).expect("valid").feedback;
    assert!(!switched_off.mlflow_requested());
    let switched_on = Config::from_map(&base().with("MLFLOW_FEEDBACK", "true")).expect("valid").feedback;
    assert!(switched_on.mlflow_requested());
    let fast = Config::from_map(&base().with("MLFLOW_FEEDBACK_RETRY_MS", "50")).expect("valid").feedback;
    assert_eq!(fast.retry_base, Duration::from_millis(50));
    for (name, bad) in [("MLFLOW_FEEDBACK", "maybe"), ("MLFLOW_FEEDBACK_RETRY_MS", "0")] {
        assert_eq!(Config::from_map(&base().with(name, bad)).err().map(|e| e.var), Some(name));
    }
}

#[test]
fn tools_are_all_on_by_default_and_chat_tools_names_known_sources_only() {
    let tools = Config::from_map(&base()).expect("valid").tools;
    assert!(tools.is_enabled("records") && !tools.read_only);
    assert_eq!((tools.approval, tools.max_steps, tools.timeout), (ApprovalPolicy::Writes, 5, Duration::from_secs(30)));
    assert_eq!(tools.approval_timeout, Duration::from_secs(600));

    let env = base()
        .with(
            "MCP_SERVERS",
            " genie = https://x.cloud.databricks.com/api/2.0/mcp/genie/01ef , docs=http://localhost:9000/mcp",
        )
        .with("CHAT_TOOLS", "genie, records")
        .with("CHAT_TOOLS_APPROVAL", "all")
        .with("CHAT_TOOLS_READ_ONLY", "true");
    let tools = Config::from_map(&env).expect("valid").tools;
    assert_eq!(
        tools.mcp_servers,
        vec![
            McpServerConfig {
                name: "genie".into(),
                url: "https://x.cloud.databricks.com/api/2.0/mcp/genie/01ef".into()
            },
            McpServerConfig { name: "docs".into(), url: "http://localhost:9000/mcp".into() },
        ]
    );
    assert!(tools.is_enabled("genie") && tools.is_enabled("records") && !tools.is_enabled("docs"));
    assert_eq!((tools.approval, tools.read_only), (ApprovalPolicy::All, true));
    assert!(!Config::from_map(&base().with("CHAT_TOOLS", "none")).expect("valid").tools.is_enabled("records"));

    for (var, bad) in [
        ("CHAT_TOOLS", "records,genie"),
        ("CHAT_TOOLS_APPROVAL", "sometimes"),
        ("TOOL_MAX_STEPS", "0"),
        ("MCP_SERVERS", "genie"),
        ("MCP_SERVERS", "records=https://x"),
        ("MCP_SERVERS", "a.b=https://x"),
        ("MCP_SERVERS", "a=ftp://x"),
        ("MCP_SERVERS", "a=https://x,a=https://y"),
    ] {
        let error = Config::from_map(&base().with(var, bad)).err().expect(bad);
        assert_eq!(error.var, var, "{bad}");
    }
}
