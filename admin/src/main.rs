//! `shop-admin`: who is an admin, decided by an operator (see `shop::admin`).
//!
//! ```text
//! shop-admin --table <TableName> promote <email>   # the account must exist (sign up first)
//! shop-admin --table <TableName> demote <email>
//! shop-admin --table <TableName> list
//! ```
//!
//! It talks to DynamoDB with your own AWS credentials and region (the SDK's usual chain:
//! `AWS_PROFILE`, `AWS_REGION`, ...; `AWS_ENDPOINT_URL_DYNAMODB` for DynamoDB Local). The table is
//! the stack's `TableName` output (or `TABLE_NAME`). Nothing here is reachable over the shop's HTTP API.

use clap::{Parser, Subcommand};
use shop::store::dynamo::DynamoStore;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "shop-admin", about = "Promote, demote and list the shop's admins (your AWS credentials)")]
struct Cli {
    /// The shop's DynamoDB table (the stack's `TableName` output).
    #[arg(long, env = "TABLE_NAME")]
    table: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Give an existing account the admin role.
    Promote { email: String },
    /// Take the admin role away; the account stays, as a customer. Takes effect at once.
    Demote { email: String },
    /// Every admin: e-mail and user id.
    List,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let aws = shop::aws::AwsEnv::from_env();
    let store = DynamoStore::from_env(&shop::config::StoreConfig { table_name: cli.table }, &aws);
    let result = match cli.command {
        Command::Promote { email } => shop::admin::promote(&store, &email).await.map(|m| {
            println!("{} ({}) is now an admin", m.email, m.user_id);
        }),
        Command::Demote { email } => shop::admin::demote(&store, &email).await.map(|m| {
            println!("{} ({}) is now a customer", m.email, m.user_id);
        }),
        Command::List => shop::admin::list(&store).await.map(|admins| {
            for m in &admins {
                println!("{}\t{}", m.email, m.user_id);
            }
            eprintln!("{} admin(s)", admins.len());
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
