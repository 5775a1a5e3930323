//! Latency of the two hot read paths on large data: the first page of a user's 10,000 chats and the newest
//! page of a chat with 100,000 messages, which has branches (a second version of every 50th message, as edits and
//! regenerated answers leave). Requests are sequential, over loopback HTTP, measured client-side.

use std::time::Instant;

use anyhow::ensure;
use sqlx::postgres::PgPoolOptions;

use crate::report::Latencies;
use crate::server_process::{BenchDatabase, ServerProcess, Target};

/// Options of `api-latency`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Requests per measured route.
    #[arg(long, default_value_t = 5000)]
    requests: usize,
    /// Chats of the measured user.
    #[arg(long, default_value_t = 10_000)]
    chats: i64,
    /// Messages in the measured chat.
    #[arg(long, default_value_t = 100_000)]
    messages: i64,
}

const USER: &str = "bench@example.com";

/// Runs the benchmark and prints a markdown table.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let database = BenchDatabase::create(&args.target.admin_url).await?;
    let result = measure(&args, &database).await;
    database.drop_database().await?;
    result
}

async fn measure(args: &Args, database: &BenchDatabase) -> anyhow::Result<()> {
    let server = ServerProcess::start(&args.target.server_bin, &database.url, &[])?;
    let pool = PgPoolOptions::new().max_connections(2).connect(&database.url).await?;
    let chat_id = seed(&pool, args).await?;
    let client = reqwest::Client::new();
    let list = format!("{}/api/chats", server.base_url);
    let history = format!("{}/api/chats/{chat_id}/messages", server.base_url);
    let deep_cursor = cursor_after(&client, &list, args.chats * 9 / 10).await?;
    let oldest_before = (args.messages / 100).max(2);
    let few = (args.requests / 25).max(20);
    let routes = [
        (format!("GET /api/chats (first page of {} chats)", args.chats), list.clone(), args.requests),
        (
            format!("GET /api/chats (page after chat {})", args.chats * 9 / 10),
            format!("{list}?cursor={deep_cursor}"),
            args.requests,
        ),
        ("GET /api/chats?q=number 4242 (rare words)".to_owned(), format!("{list}?q=number%204242"), args.requests),
        (format!("GET /api/chats?q=lorem (in all {} messages)", args.messages), format!("{list}?q=lorem"), few),
        (
            format!("GET /api/chats/{{id}}/messages (newest page of {} messages)", args.messages),
            history.clone(),
            args.requests,
        ),
        (
            format!(
                "GET /api/chats/{{id}}/messages?leaf= (a branch left {} messages from the end)",
                args.messages % 50 + 50
            ),
            format!("{history}?leaf={}", other_version(&pool, chat_id, args.messages).await?),
            args.requests,
        ),
        (
            format!("GET /api/chats/{{id}}/messages?before={oldest_before} (oldest page)"),
            format!("{history}?before={oldest_before}"),
            args.requests,
        ),
    ];
    println!("| route | requests | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for (name, url, requests) in routes {
        println!("{}", sample(&client, &url, requests).await?.row(&name));
    }
    Ok(())
}

/// The `next_cursor` after walking `skip` chats (pages of 100).
async fn cursor_after(client: &reqwest::Client, list: &str, skip: i64) -> anyhow::Result<String> {
    let mut cursor: Option<String> = None;
    for _ in 0..skip / 100 {
        let url = match &cursor {
            Some(c) => format!("{list}?limit=100&cursor={c}"),
            None => format!("{list}?limit=100"),
        };
        let page: shared::ChatPage = client.get(url).header("x-forwarded-email", USER).send().await?.json().await?;
        cursor = page.next_cursor;
    }
    cursor.ok_or_else(|| anyhow::anyhow!("fewer chats than expected"))
}

/// Seeds the measured user's chats, other users' chats (so the index is realistic) and one long chat.
async fn seed(pool: &sqlx::PgPool, args: &Args) -> anyhow::Result<uuid::Uuid> {
    let started = Instant::now();
    sqlx::raw_sql("set synchronous_commit = off").execute(pool).await?;
    sqlx::query(
        "insert into chat.chats (chat_id, owner_id, title, created_at, updated_at)
         select gen_random_uuid(), case when i <= $2 then $1 else 'other' || (i % 97) || '@example.com' end,
                'Chat number ' || i, now() - i * interval '1 minute', now() - i * interval '1 minute'
         from generate_series(1, $2 * 10) i",
    )
    .bind(USER)
    .bind(args.chats)
    .execute(pool)
    .await?;
    let chat_id: uuid::Uuid =
        sqlx::query_scalar("select chat_id from chat.chats where owner_id = $1 order by updated_at desc limit 1")
            .bind(USER)
            .fetch_one(pool)
            .await?;
    // The shown branch: message s follows message s - 1.
    sqlx::query(
        "insert into chat.messages (message_id, chat_id, seq, role, parts, status, created_at, parent_id, depth)
         select md5($1::text || s)::uuid, $1, s, case when s % 2 = 1 then 'user' else 'assistant' end,
                jsonb_build_array(jsonb_build_object('type', 'text', 'text',
                    'Message ' || s || ': ' || repeat('lorem ipsum dolor sit amet ', 8))),
                'complete', now() - (200000 - s) * interval '1 second',
                case when s > 1 then md5($1::text || (s - 1))::uuid end, s
         from generate_series(1, $2) s",
    )
    .bind(chat_id)
    .bind(args.messages)
    .execute(pool)
    .await?;
    // Other versions: every 50th message has a sibling, followed by one message of its own.
    sqlx::query(
        "insert into chat.messages (message_id, chat_id, seq, role, parts, status, created_at, parent_id, depth)
         select md5($1::text || 'version' || s || '.' || k)::uuid, $1, $2 + 2 * (s / 50) - 1 + k,
                case when (s + k) % 2 = 1 then 'user' else 'assistant' end,
                jsonb_build_array(jsonb_build_object('type', 'text', 'text',
                    'Version of ' || s || ': ' || repeat('lorem ipsum dolor sit amet ', 8))),
                'complete', now() - (200000 - s) * interval '1 second',
                case when k = 0 then md5($1::text || (s - 1))::uuid else md5($1::text || 'version' || s || '.0')::uuid end,
                s + k
         from generate_series(50, $2, 50) s, generate_series(0, 1) k",
    )
    .bind(chat_id)
    .bind(args.messages)
    .execute(pool)
    .await?;
    sqlx::query("update chat.chats set last_seq = $2 + 2 * ($2 / 50), active_leaf = md5($1::text || $2)::uuid where chat_id = $1")
        .bind(chat_id)
        .bind(args.messages)
        .execute(pool)
        .await?;
    sqlx::raw_sql("vacuum analyze chat.chats").execute(pool).await?;
    sqlx::raw_sql("vacuum analyze chat.messages").execute(pool).await?;
    eprintln!("seeded in {:.1}s", started.elapsed().as_secs_f64());
    Ok(chat_id)
}

/// The other version of the last message that has one (the seed's branches are at every 50th message).
async fn other_version(pool: &sqlx::PgPool, chat_id: uuid::Uuid, messages: i64) -> anyhow::Result<uuid::Uuid> {
    Ok(sqlx::query_scalar("select md5($1::text || 'version' || $2 || '.0')::uuid")
        .bind(chat_id)
        .bind(messages / 50 * 50)
        .fetch_one(pool)
        .await?)
}

async fn sample(client: &reqwest::Client, url: &str, requests: usize) -> anyhow::Result<Latencies> {
    let warmup = requests / 10 + 10;
    let mut samples = Vec::with_capacity(requests);
    for i in 0..warmup + requests {
        let started = Instant::now();
        let response = client.get(url).header("x-forwarded-email", USER).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        let elapsed = started.elapsed();
        ensure!(status.is_success(), "{url} answered {status}: {}", String::from_utf8_lossy(&body));
        ensure!(body.len() > 100, "{url} answered an unexpectedly small body");
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    Ok(Latencies::new(samples))
}
