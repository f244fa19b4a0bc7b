//! MySQL-specific behavior the shared conformance suite cannot see: byte-exact text keys
//! under a case-insensitive default collation, the append-only ledger's triggers, and
//! rotation, ledger appends, redemptions, sign-up grants and group membership changes
//! under contention without deadlocks.

use firefly_store::*;
use firefly_store_mysql::{testing, MysqlStore};
use std::sync::Arc;

const T0: i64 = 1_700_000_000_000;

async fn fresh_url() -> Option<String> {
    let admin = firefly_store::testing::test_server_url("TEST_MYSQL_URL")?;
    Some(testing::fresh_database(&admin).await.unwrap())
}

async fn fresh() -> Option<Arc<MysqlStore>> {
    let store = MysqlStore::connect(&ConnectSettings::new(fresh_url().await?)).await.unwrap();
    store.migrate().await.unwrap();
    Some(Arc::new(store))
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: email.into(),
        display_name: "x".into(),
        password_hash: "h".into(),
        role: Role::User,
        initial_credits: 0,
        now: T0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_and_hashes_compare_exactly() {
    let Some(store) = fresh().await else { return };
    // Distinct under a binary comparison, equal under utf8mb4_unicode_ci.
    let a = store.create_user(new_user("jose@example.com")).await.unwrap();
    store.create_user(new_user("josé@example.com")).await.unwrap();
    assert_eq!(store.user_by_email("JOSE@example.com").await.unwrap(), None);
    assert_eq!(store.user_by_email("jose@example.com").await.unwrap().unwrap().id, a.id);
    let key = |hash: &str| NewApiKey {
        user_id: a.id,
        name: "k".into(),
        key_hash: hash.into(),
        prefix: "p".into(),
        expires_at: None,
        models: vec![],
        ip_allow: vec![],
        credit_limit: None,
        rpm_limit: None,
        tpm_limit: None,
        concurrency_limit: None,
        now: T0,
    };
    store.create_api_key(key("AbC")).await.unwrap();
    store.create_api_key(key("abc")).await.unwrap();
    assert!(store.api_key_by_hash("ABC").await.unwrap().is_none());
    store.create_session(a.id, "TokA", T0 + 1000, T0).await.unwrap();
    store.create_session(a.id, "toka", T0 + 1000, T0).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contended_rotation_has_one_winner_and_no_deadlock() {
    let Some(store) = fresh().await else { return };
    let u = store.create_user(new_user("c@example.com")).await.unwrap();
    for round in 0..20 {
        let old = format!("t{round}");
        store.create_session(u.id, &old, T0 + 100_000, T0).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (store, old) = (store.clone(), old.clone());
                tokio::spawn(async move {
                    store.rotate_refresh_token(&old, &format!("{old}-{i}"), T0 + 100_000, T0 + 1).await
                })
            })
            .collect();
        let mut rotated = 0;
        for t in tasks {
            match t.await.unwrap().unwrap() {
                RotateOutcome::Rotated { .. } => rotated += 1,
                RotateOutcome::Reused { .. } | RotateOutcome::Invalid => {}
            }
        }
        assert_eq!(rotated, 1, "round {round}");
    }
}

fn ledger_entry(user_id: i64, amount: i64, key: &str) -> NewLedgerEntry {
    NewLedgerEntry {
        user_id,
        kind: if amount < 0 { LedgerKind::Charge } else { LedgerKind::Grant },
        amount,
        idempotency_key: key.into(),
        reference: None,
        note: None,
        actor_id: None,
        now: T0,
    }
}

fn code(hash: &str) -> NewRedemptionCode {
    NewRedemptionCode { code_hash: hash.into(), prefix: "p".into() }
}

fn new_batch(created_by: i64, amount: i64) -> NewRedemptionBatch {
    NewRedemptionBatch { name: "b".into(), amount, expires_at: None, created_by, now: T0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_and_code_hashes_compare_exactly() {
    let Some(store) = fresh().await else { return };
    let u = store.create_user(new_user("k@example.com")).await.unwrap();
    // Distinct under a binary comparison, equal under utf8mb4_unicode_ci.
    for key in ["key", "KEY", "kéy"] {
        let out = store.append_ledger(ledger_entry(u.id, 1, key), false).await.unwrap();
        assert!(matches!(out, LedgerOutcome::Applied(_)), "{key}: {out:?}");
    }
    let LedgerOutcome::Duplicate(e) = store.append_ledger(ledger_entry(u.id, 1, "KEY"), false).await.unwrap() else {
        panic!("expected Duplicate")
    };
    assert_eq!(e.idempotency_key, "KEY");
    assert_eq!(store.balance(u.id).await.unwrap(), 3);
    store.create_redemption_batch(new_batch(u.id, 5), vec![code("AbC"), code("abc"), code("ábc")]).await.unwrap();
    assert_eq!(store.redeem_code("ABC", u.id, T0).await.unwrap(), RedeemOutcome::NotFound);
    assert!(matches!(store.redeem_code("AbC", u.id, T0).await.unwrap(), RedeemOutcome::Redeemed(_)));
    assert!(matches!(store.redeem_code("abc", u.id, T0).await.unwrap(), RedeemOutcome::Redeemed(_)));
    assert_eq!(store.balance(u.id).await.unwrap(), 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_rejects_updates_and_deletes() {
    use sqlx::{Connection, Executor};
    let Some(url) = fresh_url().await else { return };
    let store = MysqlStore::connect(&ConnectSettings::new(url.clone())).await.unwrap();
    store.migrate().await.unwrap();
    let u = store.create_user(new_user("a@example.com")).await.unwrap();
    store.append_ledger(ledger_entry(u.id, 10, "g"), false).await.unwrap();
    let mut conn = sqlx::MySqlConnection::connect(&url).await.unwrap();
    for sql in ["UPDATE ledger SET amount = 1000", "DELETE FROM ledger"] {
        let err = conn.execute(sql).await.unwrap_err();
        assert!(err.to_string().contains("the ledger is append-only"), "{sql}: {err}");
    }
    assert_eq!(store.ledger_sum(u.id).await.unwrap(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_across_users_applies_once_without_deadlock() {
    let Some(store) = fresh().await else { return };
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(store.create_user(new_user(&format!("x{i}@example.com"))).await.unwrap().id);
    }
    // Appends for different users do not share a balance lock: the key's unique index
    // is what decides, and the losers (other users) answer `KeyConflict`.
    for round in 0..10 {
        let key = format!("shared-{round}");
        let tasks: Vec<_> = users
            .iter()
            .map(|&uid| {
                let (store, key) = (store.clone(), key.clone());
                tokio::spawn(async move { store.append_ledger(ledger_entry(uid, 3, &key), false).await })
            })
            .collect();
        let mut winners = Vec::new();
        let mut conflicts = 0;
        for t in tasks {
            match t.await.unwrap().unwrap() {
                LedgerOutcome::Applied(e) => winners.push(e),
                LedgerOutcome::KeyConflict => conflicts += 1,
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!((winners.len(), conflicts), (1, 5), "round {round}");
    }
    let mut total = 0;
    for uid in users {
        let balance = store.balance(uid).await.unwrap();
        assert_eq!(balance, store.ledger_sum(uid).await.unwrap());
        total += balance;
    }
    assert_eq!(total, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_appends_and_redemptions_do_not_deadlock() {
    let Some(store) = fresh().await else { return };
    let admin = store.create_user(new_user("admin@example.com")).await.unwrap();
    let a = store.create_user(new_user("a@example.com")).await.unwrap().id;
    let b = store.create_user(new_user("b@example.com")).await.unwrap().id;
    for round in 0..10 {
        let hashes: Vec<String> = (0..4).map(|i| format!("r{round}-{i}")).collect();
        store.create_redemption_batch(new_batch(admin.id, 2), hashes.iter().map(|h| code(h)).collect()).await.unwrap();
        let mut tasks = Vec::new();
        for (i, hash) in hashes.iter().enumerate() {
            // Each code is claimed by both users at once, while both also spend and earn.
            for uid in [a, b] {
                let (redeemer, hash) = (store.clone(), hash.clone());
                tasks.push(tokio::spawn(async move {
                    redeemer.redeem_code(&hash, uid, T0).await.map(|o| matches!(o, RedeemOutcome::Redeemed(_)))
                }));
                let (spender, key) = (store.clone(), format!("spend-{round}-{i}-{uid}"));
                tasks.push(tokio::spawn(async move {
                    spender.append_ledger(ledger_entry(uid, -1, &key), false).await.map(|_| false)
                }));
            }
        }
        let mut redeemed = 0;
        for t in tasks {
            redeemed += t.await.unwrap().unwrap() as i32;
        }
        assert_eq!(redeemed, 4, "round {round}");
    }
    for uid in [a, b] {
        let balance = store.balance(uid).await.unwrap();
        assert!(balance >= 0);
        assert_eq!(balance, store.ledger_sum(uid).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_and_group_names_compare_exactly() {
    let Some(store) = fresh().await else { return };
    let price = |model: &str, input: i64| ModelPrice {
        model: model.into(),
        price: firefly_core::money::TokenPrice {
            input_per_mtok: input,
            output_per_mtok: 1,
            cached_input_per_mtok: None,
            ..Default::default()
        },
        updated_at: T0,
    };
    // Distinct under a binary comparison, equal under utf8mb4_unicode_ci.
    for (model, input) in [("gpt-4o", 1), ("GPT-4O", 2), ("modèle", 3), ("modele", 4)] {
        store.put_model_price(price(model, input)).await.unwrap();
    }
    assert_eq!(store.model_price("GPT-4O").await.unwrap().unwrap().price.input_per_mtok, 2);
    assert_eq!(store.model_price("modele").await.unwrap().unwrap().price.input_per_mtok, 4);
    let names: Vec<String> = store.list_model_prices().await.unwrap().into_iter().map(|p| p.model).collect();
    assert_eq!(names, ["GPT-4O", "gpt-4o", "modele", "modèle"], "byte order");
    store.create_group("vip", 1, T0).await.unwrap();
    store.create_group("VIP", 2, T0).await.unwrap();
    let names: Vec<String> = store.list_groups().await.unwrap().into_iter().map(|g| g.name).collect();
    assert_eq!(names, ["VIP", "vip"]);
    // Negative money is refused by the schema's CHECKs.
    assert!(store.put_model_price(price("negative", -1)).await.is_err());
    assert!(store.create_group("negative", -1, T0).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_signups_with_grants_do_not_deadlock() {
    let Some(store) = fresh().await else { return };
    for round in 0..5 {
        // Distinct emails race for adjacent balances and ledger rows; pairs of equal
        // emails race for the unique key, and the loser must leave nothing behind.
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut u = new_user(&format!("s{round}-{}@example.com", i / 2));
                    u.initial_credits = 100;
                    store.create_user(u).await
                })
            })
            .collect();
        let mut created = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(u) => created.push(u.id),
                Err(StoreError::Conflict("email")) => {}
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        assert_eq!(created.len(), 8, "round {round}");
        for id in created {
            assert_eq!(store.balance(id).await.unwrap(), 100);
            assert_eq!(store.ledger_sum(id).await.unwrap(), 100);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_membership_changes_do_not_deadlock() {
    let Some(store) = fresh().await else { return };
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(store.create_user(new_user(&format!("m{i}@example.com"))).await.unwrap().id);
    }
    for round in 0..10 {
        let a = store.create_group(&format!("a{round}"), 10_000, T0).await.unwrap().id;
        let b = store.create_group(&format!("b{round}"), 10_000, T0).await.unwrap().id;
        let mut tasks = Vec::new();
        for (i, &uid) in users.iter().enumerate() {
            // Every user moves between the two groups and out again, while group `a` is
            // deleted underneath them.
            for target in [Some(a), Some(b), None, Some(if i % 2 == 0 { a } else { b })] {
                let store = store.clone();
                tasks.push(tokio::spawn(async move { store.set_user_group(uid, target).await.map(|_| ()) }));
            }
        }
        let deleter = store.clone();
        tasks.push(tokio::spawn(async move { deleter.delete_group(a).await.map(|_| ()) }));
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(!store.delete_group(a).await.unwrap());
        let mut members = 0;
        for &uid in &users {
            if let Some(g) = store.user_group(uid).await.unwrap() {
                assert_eq!(g.id, b, "round {round}");
                members += 1;
            }
        }
        let groups = store.list_groups().await.unwrap();
        let listed = groups.iter().find(|g| g.id == b).unwrap();
        assert_eq!(listed.members, members, "round {round}");
        assert!(groups.iter().all(|g| g.id != a));
    }
}
