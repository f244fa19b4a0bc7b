//! The conformance suite: every store method, exercised the same way on every backend.
//! Behind the `conformance` feature, which backends enable in their dev-dependencies.
//!
//! A backend's test file calls [`conformance_tests!`](crate::conformance_tests) with an
//! async function that returns a store on a fresh, migrated database (or `None` to skip
//! when its server is not configured outside CI). Each case becomes its own `#[test]`.

use crate::*;
use firefly_core::time::Millis;

const T0: Millis = 1_700_000_000_000;

#[macro_export]
macro_rules! conformance_tests {
    ($setup:path) => {
        $crate::conformance_tests!(@cases $setup;
            users_create_and_find,
            users_signup_grant,
            users_email_unique,
            users_profile_password_status_role,
            users_change_password_revokes_sessions,
            users_list_search_and_page,
            users_search_unicode_and_rename,
            users_count_active_admins,
            preferences_roundtrip,
            sessions_rotate_chain,
            sessions_reuse_revokes_family,
            sessions_expired_token_invalid,
            sessions_concurrent_rotation_single_winner,
            sessions_revoke_one_and_all,
            sessions_auth_state,
            api_keys_create_list_get,
            api_keys_owner_scoped,
            api_keys_update_patch_semantics,
            api_keys_delete_and_lookup,
            api_keys_lookup_reflects_user_status,
            api_keys_hash_unique,
            ops_ping_migrate_status,
            ops_close,
            text_roundtrips_unicode,
            ledger_append_and_balance,
            ledger_idempotent,
            ledger_insufficient_and_overdraft,
            ledger_concurrent_debits_never_overspend,
            ledger_list_pages,
            redemption_batches_and_redeem,
            redemption_concurrent_single_winner,
            redemption_batch_is_all_or_nothing,
            prices_put_get_list_delete,
            groups_crud_and_membership,
            channels_create_get_list,
            channels_replace_is_optimistic,
            channels_status_and_delete,
            api_keys_limits_roundtrip,
            usage_record_charges_logs_and_rolls_up,
            usage_record_is_idempotent,
            usage_charge_clamps_to_balance,
            usage_batch_is_all_or_nothing,
            usage_concurrent_batches_apply_once,
            usage_large_batch_matches_the_ledger,
            usage_logs_filters_and_pages,
            usage_days_range_and_all_users,
            usage_prune_keeps_rollups,
            holds_respect_balance_and_release,
            holds_respect_key_limit,
            holds_concurrent_never_exceed_balance,
            holds_expire,
            usage_record_releases_its_hold,
            holds_contention_with_usage_and_expiry
        );
    };
    (@cases $setup:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(store) = $setup().await else { return };
                $crate::conformance::$case(store).await;
            }
        )*
    };
}

/// Instance-level cases: several stores on one fresh, unmigrated database. `$fresh_url`
/// returns such a database's URL (or `None` to skip); `$connect` opens a store on
/// `ConnectSettings`.
#[macro_export]
macro_rules! conformance_instance_tests {
    ($fresh_url:path, $connect:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn instances_first_migration_concurrently() {
            let Some(url) = $fresh_url().await else { return };
            let mut stores = Vec::new();
            for _ in 0..4 {
                stores.push($connect(&$crate::ConnectSettings::new(url.clone())).await);
            }
            $crate::conformance::instances_first_migration_concurrently(stores).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn instances_read_replica_serves_listings() {
            let Some(url) = $fresh_url().await else { return };
            let settings = $crate::ConnectSettings { read_url: Some(url.clone()), ..$crate::ConnectSettings::new(url) };
            $crate::conformance::instances_read_replica_serves_listings($connect(&settings).await).await;
        }
    };
}

/// Unmigrated stores on one database migrate at the same moment: the backend's lock
/// lets one apply each migration and the others find nothing left to do.
pub async fn instances_first_migration_concurrently(stores: Vec<DynStore>) {
    let before = stores[0].migration_status().await.unwrap();
    assert_eq!(before, MigrationStatus { expected: before.expected, applied: 0, latest_applied: None, unknown: 0 });
    assert!(!before.is_current());
    let tasks: Vec<_> = stores.iter().cloned().map(|s| tokio::spawn(async move { s.migrate().await })).collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for s in &stores {
        let status = s.migration_status().await.unwrap();
        assert!(status.is_current(), "{status:?}");
    }
}

/// With a read URL, admin listings come from the replica pool, which shows in the stats.
pub async fn instances_read_replica_serves_listings(store: DynStore) {
    store.migrate().await.unwrap();
    store.create_user(new_user("replica@example.com", Role::User)).await.unwrap();
    let page = store.list_users(&UserQuery { search: Some("REPLICA@".into()), limit: 10, offset: 0 }).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].email, "replica@example.com");
    assert!(store.pool_stats().iter().any(|p| p.pool == "replica"), "{:?}", store.pool_stats());
}

fn new_user(email: &str, role: Role) -> NewUser {
    NewUser {
        email: email.into(),
        display_name: email.split('@').next().unwrap_or("").into(),
        password_hash: format!("$argon2id$fake${email}"),
        role,
        initial_credits: 0,
        now: T0,
    }
}

fn new_key(user_id: i64, name: &str, hash: &str) -> NewApiKey {
    NewApiKey {
        user_id,
        name: name.into(),
        key_hash: hash.into(),
        prefix: "sk-ff-abcd".into(),
        expires_at: None,
        models: vec![],
        ip_allow: vec![],
        credit_limit: None,
        rpm_limit: None,
        tpm_limit: None,
        concurrency_limit: None,
        now: T0,
    }
}

pub async fn users_create_and_find(store: DynStore) {
    let user = store.create_user(new_user("ada@example.com", Role::User)).await.unwrap();
    assert!(user.id > 0);
    assert_eq!(user.email, "ada@example.com");
    assert_eq!(user.role, Role::User);
    assert_eq!(user.status, UserStatus::Active);
    assert_eq!(user.created_at, T0);
    assert_eq!(store.user_by_id(user.id).await.unwrap(), Some(user.clone()));
    assert_eq!(store.user_by_email("ada@example.com").await.unwrap(), Some(user.clone()));
    assert_eq!(store.user_by_email("nobody@example.com").await.unwrap(), None);
    assert_eq!(store.user_by_id(user.id + 1000).await.unwrap(), None);
}

pub async fn users_signup_grant(store: DynStore) {
    let mut nu = new_user("granted@example.com", Role::User);
    nu.initial_credits = 250;
    let u = store.create_user(nu).await.unwrap();
    assert_eq!(store.balance(u.id).await.unwrap(), 250);
    assert_eq!(store.ledger_sum(u.id).await.unwrap(), 250);
    let rows = store.list_ledger(u.id, None, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].kind, rows[0].amount, rows[0].balance_after), (LedgerKind::Grant, 250, 250));
    assert_eq!(rows[0].idempotency_key, format!("signup:{}", u.id));
    assert_eq!(rows[0].created_at, T0);
    // A failed creation (duplicate email) grants nothing and leaves no orphan row.
    let mut dup = new_user("granted@example.com", Role::User);
    dup.initial_credits = 999;
    assert!(store.create_user(dup).await.is_err());
    assert_eq!(store.ledger_sum(u.id).await.unwrap(), 250);
    let plain = store.create_user(new_user("plain@example.com", Role::User)).await.unwrap();
    assert!(store.list_ledger(plain.id, None, 10).await.unwrap().is_empty(), "no grant, no row");
}

pub async fn users_email_unique(store: DynStore) {
    store.create_user(new_user("dup@example.com", Role::User)).await.unwrap();
    let err = store.create_user(new_user("dup@example.com", Role::Admin)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict("email")), "{err:?}");
    // The failed insert left nothing behind.
    let page = store.list_users(&UserQuery { search: None, limit: 10, offset: 0 }).await.unwrap();
    assert_eq!(page.total, 1);
}

pub async fn users_profile_password_status_role(store: DynStore) {
    let user = store.create_user(new_user("bob@example.com", Role::User)).await.unwrap();
    let patched = store
        .update_profile(user.id, ProfilePatch { display_name: Some("Bobby".into()) }, T0 + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(patched.display_name, "Bobby");
    assert_eq!(patched.updated_at, T0 + 1);
    let same = store.update_profile(user.id, ProfilePatch::default(), T0 + 2).await.unwrap().unwrap();
    assert_eq!(same.display_name, "Bobby");
    assert!(store.update_profile(user.id + 99, ProfilePatch::default(), T0).await.unwrap().is_none());

    assert!(store.change_password(user.id, "$argon2id$new", T0 + 3).await.unwrap());
    let changed = store.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(changed.password_hash, "$argon2id$new");
    assert_eq!(changed.updated_at, T0 + 3);
    assert!(!store.change_password(user.id + 99, "x", T0).await.unwrap());

    let disabled = store.set_user_status(user.id, UserStatus::Disabled, T0 + 4).await.unwrap().unwrap();
    assert_eq!(disabled.status, UserStatus::Disabled);
    let admin = store.set_user_role(user.id, Role::Admin, T0 + 5).await.unwrap().unwrap();
    assert_eq!(admin.role, Role::Admin);
    assert_eq!(admin.status, UserStatus::Disabled);
    assert!(store.set_user_role(user.id + 99, Role::Admin, T0).await.unwrap().is_none());
    assert!(store.set_user_status(user.id + 99, UserStatus::Active, T0).await.unwrap().is_none());
}

pub async fn users_change_password_revokes_sessions(store: DynStore) {
    let u = store.create_user(new_user("pw@example.com", Role::User)).await.unwrap();
    let v = store.create_user(new_user("pw2@example.com", Role::User)).await.unwrap();
    let s1 = store.create_session(u.id, "pw-a1", T0 + 10_000, T0).await.unwrap();
    let s2 = store.create_session(u.id, "pw-b1", T0 + 10_000, T0).await.unwrap();
    let s3 = store.create_session(u.id, "pw-c1", T0 + 10_000, T0).await.unwrap();
    let sv = store.create_session(v.id, "pw-v1", T0 + 10_000, T0).await.unwrap();
    store.rotate_refresh_token("pw-a1", "pw-a2", T0 + 10_000, T0 + 1).await.unwrap();
    assert!(store.revoke_session(u.id, s3, T0 + 2).await.unwrap());

    assert!(store.change_password(u.id, "$argon2id$changed", T0 + 5).await.unwrap());
    assert_eq!(store.user_by_id(u.id).await.unwrap().unwrap().password_hash, "$argon2id$changed");
    for sid in [s1, s2, s3] {
        assert!(!store.auth_state(u.id, sid).await.unwrap().unwrap().session_active, "session {sid}");
    }
    for token in ["pw-a2", "pw-b1"] {
        let out = store.rotate_refresh_token(token, &format!("{token}-next"), T0 + 10_000, T0 + 6).await.unwrap();
        assert_eq!(out, RotateOutcome::Invalid, "{token}");
    }
    // Every session was already revoked: nothing is left to revoke.
    assert_eq!(store.revoke_all_sessions(u.id, T0 + 7).await.unwrap(), 0);
    // Another user is untouched.
    assert_eq!(store.user_by_id(v.id).await.unwrap().unwrap().password_hash, "$argon2id$fake$pw2@example.com");
    assert!(store.auth_state(v.id, sv).await.unwrap().unwrap().session_active);
    assert!(matches!(
        store.rotate_refresh_token("pw-v1", "pw-v2", T0 + 10_000, T0 + 8).await.unwrap(),
        RotateOutcome::Rotated { .. }
    ));
    // An unknown user changes nothing, and a new login after the change works.
    assert!(!store.change_password(v.id + 1000, "x", T0 + 9).await.unwrap());
    let fresh = store.create_session(u.id, "pw-d1", T0 + 10_000, T0 + 9).await.unwrap();
    assert!(store.auth_state(u.id, fresh).await.unwrap().unwrap().session_active);
}

pub async fn users_list_search_and_page(store: DynStore) {
    for i in 0..7 {
        let mut u = new_user(&format!("user{i}@example.com"), Role::User);
        u.now = T0 + i;
        store.create_user(u).await.unwrap();
    }
    let mut special = new_user("carol@corp.test", Role::User);
    special.display_name = "Carol 100%_done".into();
    special.now = T0 + 100;
    store.create_user(special).await.unwrap();

    let all = store.list_users(&UserQuery { search: None, limit: 3, offset: 0 }).await.unwrap();
    assert_eq!(all.total, 8);
    assert_eq!(all.items.len(), 3);
    assert_eq!(all.items[0].email, "carol@corp.test", "newest first");
    let rest = store.list_users(&UserQuery { search: None, limit: 10, offset: 3 }).await.unwrap();
    assert_eq!(rest.items.len(), 5);
    assert_eq!(rest.items.last().unwrap().email, "user0@example.com");

    let found = store.list_users(&UserQuery { search: Some("USER3".into()), limit: 10, offset: 0 }).await.unwrap();
    assert_eq!(found.total, 1, "search is case-insensitive");
    assert_eq!(found.items[0].email, "user3@example.com");
    let by_name = store.list_users(&UserQuery { search: Some("carol".into()), limit: 10, offset: 0 }).await.unwrap();
    assert_eq!(by_name.total, 1);
    // LIKE wildcards in the search are literal characters.
    let pct = store.list_users(&UserQuery { search: Some("100%_".into()), limit: 10, offset: 0 }).await.unwrap();
    assert_eq!(pct.total, 1);
    let underscore = store.list_users(&UserQuery { search: Some("_".into()), limit: 10, offset: 0 }).await.unwrap();
    assert_eq!(underscore.total, 1);
    let none = store.list_users(&UserQuery { search: Some("zzz".into()), limit: 10, offset: 0 }).await.unwrap();
    assert_eq!(none, Page { items: vec![], total: 0 });
}

fn search(s: &str) -> UserQuery {
    UserQuery { search: Some(s.into()), limit: 10, offset: 0 }
}

async fn total(store: &DynStore, s: &str) -> i64 {
    store.list_users(&search(s)).await.unwrap().total
}

/// Searches lowercase with Rust's Unicode rules on every backend, whatever the database's
/// own `LOWER()` or collation would do, and follow a renamed user.
pub async fn users_search_unicode_and_rename(store: DynStore) {
    let mut writer = new_user("writer@lettres.fr", Role::User);
    writer.display_name = "Émile Zola 萤火".into();
    let writer = store.create_user(writer).await.unwrap();
    let mut odd = new_user("odd@example.com", Role::User);
    odd.display_name = "a!b%c_d".into();
    odd.now = T0 + 1;
    store.create_user(odd).await.unwrap();

    for hit in ["émile", "ÉMILE", "萤火", "zola 萤", "WRITER@LETTRES", "Writer@"] {
        let page = store.list_users(&search(hit)).await.unwrap();
        assert_eq!(page.total, 1, "{hit:?}");
        assert_eq!(page.items[0].id, writer.id, "{hit:?}");
    }
    // Case folds; accents do not.
    assert_eq!(total(&store, "emile").await, 0);
    // `!`, `%` and `_` are literal, never an escape or a wildcard.
    for (s, want) in [("!b%c_", 1), ("a!b", 1), ("!", 1), ("!!", 0), ("a%c", 0), ("a_b", 0), ("b%", 1), ("_d", 1)] {
        assert_eq!(total(&store, s).await, want, "{s:?}");
    }

    store.update_profile(writer.id, ProfilePatch { display_name: Some("Ärger Straße".into()) }, T0 + 2).await.unwrap();
    assert_eq!(total(&store, "ÄRGER").await, 1, "the new name is searchable");
    assert_eq!(total(&store, "straße").await, 1);
    assert_eq!(total(&store, "émile").await, 0, "the old name is not");
    assert_eq!(total(&store, "writer@").await, 1, "the email still is");
    store.update_profile(writer.id, ProfilePatch::default(), T0 + 3).await.unwrap();
    assert_eq!(total(&store, "ärger").await, 1, "an empty patch keeps the search text");
}

pub async fn users_count_active_admins(store: DynStore) {
    assert_eq!(store.count_active_admins().await.unwrap(), 0);
    let a1 = store.create_user(new_user("a1@example.com", Role::Admin)).await.unwrap();
    let u = store.create_user(new_user("u1@example.com", Role::User)).await.unwrap();
    assert_eq!(store.count_active_admins().await.unwrap(), 1);
    store.set_user_role(u.id, Role::Admin, T0).await.unwrap();
    assert_eq!(store.count_active_admins().await.unwrap(), 2);
    // A disabled admin cannot act, so it does not count.
    store.set_user_status(a1.id, UserStatus::Disabled, T0 + 1).await.unwrap();
    assert_eq!(store.count_active_admins().await.unwrap(), 1);
    let d = store.create_user(new_user("d1@example.com", Role::User)).await.unwrap();
    store.set_user_status(d.id, UserStatus::Disabled, T0 + 2).await.unwrap();
    store.set_user_role(d.id, Role::Admin, T0 + 3).await.unwrap();
    assert_eq!(store.count_active_admins().await.unwrap(), 1);
    store.set_user_status(a1.id, UserStatus::Active, T0 + 4).await.unwrap();
    assert_eq!(store.count_active_admins().await.unwrap(), 2);
}

pub async fn preferences_roundtrip(store: DynStore) {
    let a = store.create_user(new_user("pa@example.com", Role::User)).await.unwrap();
    let b = store.create_user(new_user("pb@example.com", Role::User)).await.unwrap();
    assert_eq!(store.get_preferences(a.id).await.unwrap(), None);
    let prefs = serde_json::json!({"theme": "dark", "language": "zh-CN", "nested": {"n": 1}});
    store.put_preferences(a.id, &prefs, T0).await.unwrap();
    assert_eq!(store.get_preferences(a.id).await.unwrap(), Some(prefs));
    let replaced = serde_json::json!({"theme": "light"});
    store.put_preferences(a.id, &replaced, T0 + 1).await.unwrap();
    assert_eq!(store.get_preferences(a.id).await.unwrap(), Some(replaced));
    assert_eq!(store.get_preferences(b.id).await.unwrap(), None, "preferences are per user");
}

pub async fn sessions_rotate_chain(store: DynStore) {
    let u = store.create_user(new_user("s1@example.com", Role::User)).await.unwrap();
    let sid = store.create_session(u.id, "h1", T0 + 1000, T0).await.unwrap();
    let out = store.rotate_refresh_token("h1", "h2", T0 + 2000, T0 + 1).await.unwrap();
    assert_eq!(out, RotateOutcome::Rotated { user_id: u.id, session_id: sid });
    let out = store.rotate_refresh_token("h2", "h3", T0 + 3000, T0 + 2).await.unwrap();
    assert_eq!(out, RotateOutcome::Rotated { user_id: u.id, session_id: sid });
    assert_eq!(store.rotate_refresh_token("unknown", "h9", T0 + 3000, T0 + 2).await.unwrap(), RotateOutcome::Invalid);
    let state = store.auth_state(u.id, sid).await.unwrap().unwrap();
    assert!(state.session_active);
}

pub async fn sessions_reuse_revokes_family(store: DynStore) {
    let u = store.create_user(new_user("s2@example.com", Role::User)).await.unwrap();
    let sid = store.create_session(u.id, "r1", T0 + 10_000, T0).await.unwrap();
    let other = store.create_session(u.id, "o1", T0 + 10_000, T0).await.unwrap();
    store.rotate_refresh_token("r1", "r2", T0 + 10_000, T0 + 1).await.unwrap();
    // An attacker replays r1: the whole family dies, including the legitimate r2.
    assert_eq!(
        store.rotate_refresh_token("r1", "rx", T0 + 10_000, T0 + 2).await.unwrap(),
        RotateOutcome::Reused { user_id: u.id }
    );
    assert_eq!(store.rotate_refresh_token("r2", "r3", T0 + 10_000, T0 + 3).await.unwrap(), RotateOutcome::Invalid);
    assert!(!store.auth_state(u.id, sid).await.unwrap().unwrap().session_active);
    // The replayed successor was never stored.
    assert_eq!(store.rotate_refresh_token("rx", "ry", T0 + 10_000, T0 + 3).await.unwrap(), RotateOutcome::Invalid);
    // Another login of the same user is untouched.
    assert!(store.auth_state(u.id, other).await.unwrap().unwrap().session_active);
    assert!(matches!(
        store.rotate_refresh_token("o1", "o2", T0 + 10_000, T0 + 4).await.unwrap(),
        RotateOutcome::Rotated { .. }
    ));
}

pub async fn sessions_expired_token_invalid(store: DynStore) {
    let u = store.create_user(new_user("s3@example.com", Role::User)).await.unwrap();
    store.create_session(u.id, "e1", T0 + 100, T0).await.unwrap();
    assert_eq!(store.rotate_refresh_token("e1", "e2", T0 + 200, T0 + 100).await.unwrap(), RotateOutcome::Invalid);
}

pub async fn sessions_concurrent_rotation_single_winner(store: DynStore) {
    let u = store.create_user(new_user("s4@example.com", Role::User)).await.unwrap();
    store.create_session(u.id, "c0", T0 + 100_000, T0).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(
                async move { store.rotate_refresh_token("c0", &format!("c1-{i}"), T0 + 100_000, T0 + 1).await },
            )
        })
        .collect();
    let mut rotated = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(RotateOutcome::Rotated { .. }) => rotated += 1,
            Ok(_) => {}
            // A backend may abort a loser with a serialization/deadlock error; it must not rotate.
            Err(StoreError::Database(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(rotated <= 1, "{rotated} concurrent rotations of one token succeeded");
}

pub async fn sessions_revoke_one_and_all(store: DynStore) {
    let u = store.create_user(new_user("s5@example.com", Role::User)).await.unwrap();
    let v = store.create_user(new_user("s6@example.com", Role::User)).await.unwrap();
    let s1 = store.create_session(u.id, "l1", T0 + 10_000, T0).await.unwrap();
    let s2 = store.create_session(u.id, "l2", T0 + 10_000, T0).await.unwrap();
    let s3 = store.create_session(u.id, "l3", T0 + 10_000, T0).await.unwrap();
    let sv = store.create_session(v.id, "lv", T0 + 10_000, T0).await.unwrap();
    assert!(store.revoke_session(u.id, s1, T0 + 1).await.unwrap());
    assert!(!store.revoke_session(u.id, s1, T0 + 2).await.unwrap(), "already revoked");
    assert!(!store.revoke_session(u.id, sv + 1000, T0 + 2).await.unwrap(), "no such session");
    assert!(!store.auth_state(u.id, s1).await.unwrap().unwrap().session_active);
    assert_eq!(store.rotate_refresh_token("l1", "l1b", T0 + 10_000, T0 + 2).await.unwrap(), RotateOutcome::Invalid);
    assert!(!store.revoke_session(v.id, s2, T0 + 3).await.unwrap(), "a session is revoked only by its owner");
    assert!(store.revoke_session(u.id, s2, T0 + 3).await.unwrap());
    assert_eq!(store.revoke_all_sessions(u.id, T0 + 4).await.unwrap(), 1);
    assert!(!store.auth_state(u.id, s3).await.unwrap().unwrap().session_active);
    assert_eq!(store.rotate_refresh_token("l3", "l4", T0 + 10_000, T0 + 5).await.unwrap(), RotateOutcome::Invalid);
    assert!(store.auth_state(v.id, sv).await.unwrap().unwrap().session_active);
}

pub async fn sessions_auth_state(store: DynStore) {
    let u = store.create_user(new_user("s7@example.com", Role::User)).await.unwrap();
    let v = store.create_user(new_user("s8@example.com", Role::User)).await.unwrap();
    let sid = store.create_session(u.id, "a1", T0 + 10_000, T0).await.unwrap();
    let state = store.auth_state(u.id, sid).await.unwrap().unwrap();
    assert_eq!(state, AuthState { role: Role::User, status: UserStatus::Active, session_active: true });
    store.set_user_status(u.id, UserStatus::Disabled, T0).await.unwrap();
    store.set_user_role(u.id, Role::Admin, T0).await.unwrap();
    let state = store.auth_state(u.id, sid).await.unwrap().unwrap();
    assert_eq!(state, AuthState { role: Role::Admin, status: UserStatus::Disabled, session_active: true });
    // Someone else's session id is not this user's session.
    let foreign = store.auth_state(v.id, sid).await.unwrap().unwrap();
    assert!(!foreign.session_active);
    assert_eq!(store.auth_state(v.id + 1000, sid).await.unwrap(), None);
}

pub async fn api_keys_create_list_get(store: DynStore) {
    let u = store.create_user(new_user("k1@example.com", Role::User)).await.unwrap();
    let mut nk = new_key(u.id, "first", "hash-1");
    nk.expires_at = Some(T0 + 86_400_000);
    nk.models = vec!["gpt-4o".into(), "qwen-max".into()];
    nk.ip_allow = vec!["10.0.0.0/8".into(), "::1".into()];
    nk.credit_limit = Some(5_000);
    nk.rpm_limit = Some(60);
    let k1 = store.create_api_key(nk).await.unwrap();
    assert!(k1.id > 0);
    assert_eq!(k1.name, "first");
    assert_eq!(k1.prefix, "sk-ff-abcd");
    assert!(k1.enabled);
    assert_eq!(k1.expires_at, Some(T0 + 86_400_000));
    assert_eq!(k1.models, vec!["gpt-4o", "qwen-max"]);
    assert_eq!(k1.ip_allow, vec!["10.0.0.0/8", "::1"]);
    assert_eq!(k1.credit_limit, Some(5_000));
    assert_eq!(k1.rpm_limit, Some(60));
    let mut second = new_key(u.id, "second", "hash-2");
    second.now = T0 + 1;
    let k2 = store.create_api_key(second).await.unwrap();
    let list = store.list_api_keys(u.id).await.unwrap();
    assert_eq!(list, vec![k2.clone(), k1.clone()], "newest first");
    assert_eq!(store.get_api_key(u.id, k1.id).await.unwrap(), Some(k1));
}

pub async fn api_keys_owner_scoped(store: DynStore) {
    let a = store.create_user(new_user("ka@example.com", Role::User)).await.unwrap();
    let b = store.create_user(new_user("kb@example.com", Role::User)).await.unwrap();
    let ka = store.create_api_key(new_key(a.id, "a", "hash-a")).await.unwrap();
    assert_eq!(store.get_api_key(b.id, ka.id).await.unwrap(), None);
    assert!(store.list_api_keys(b.id).await.unwrap().is_empty());
    let patch = ApiKeyPatch { name: Some("stolen".into()), ..Default::default() };
    assert_eq!(store.update_api_key(b.id, ka.id, patch, T0).await.unwrap(), None);
    assert!(!store.delete_api_key(b.id, ka.id, T0).await.unwrap());
    assert_eq!(store.get_api_key(a.id, ka.id).await.unwrap().unwrap().name, "a");
}

pub async fn api_keys_update_patch_semantics(store: DynStore) {
    let u = store.create_user(new_user("kp@example.com", Role::User)).await.unwrap();
    let mut nk = new_key(u.id, "p", "hash-p");
    nk.expires_at = Some(T0 + 5);
    nk.credit_limit = Some(10);
    let k = store.create_api_key(nk).await.unwrap();
    let patch = ApiKeyPatch {
        name: Some("renamed".into()),
        enabled: Some(false),
        expires_at: Some(None),
        models: Some(vec!["m1".into()]),
        ip_allow: Some(vec!["192.168.1.0/24".into()]),
        credit_limit: None,
        rpm_limit: Some(Some(30)),
        tpm_limit: None,
        concurrency_limit: None,
    };
    let k = store.update_api_key(u.id, k.id, patch, T0 + 9).await.unwrap().unwrap();
    assert_eq!(k.name, "renamed");
    assert!(!k.enabled);
    assert_eq!(k.expires_at, None);
    assert_eq!(k.models, vec!["m1"]);
    assert_eq!(k.ip_allow, vec!["192.168.1.0/24"]);
    assert_eq!(k.credit_limit, Some(10), "untouched field kept");
    assert_eq!(k.rpm_limit, Some(30));
    assert_eq!(k.updated_at, T0 + 9);
    let k = store
        .update_api_key(
            u.id,
            k.id,
            ApiKeyPatch { credit_limit: Some(None), enabled: Some(true), ..Default::default() },
            T0 + 10,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(k.credit_limit, None);
    assert!(k.enabled);
    assert_eq!(k.name, "renamed");
}

pub async fn api_keys_delete_and_lookup(store: DynStore) {
    let u = store.create_user(new_user("kd@example.com", Role::User)).await.unwrap();
    let k = store.create_api_key(new_key(u.id, "d", "hash-d")).await.unwrap();
    let auth = store.api_key_by_hash("hash-d").await.unwrap().unwrap();
    assert_eq!(auth.key, k);
    assert_eq!(auth.user_status, UserStatus::Active);
    assert_eq!(auth.user_role, Role::User);
    assert_eq!(store.api_key_by_hash("hash-x").await.unwrap(), None);
    assert!(store.delete_api_key(u.id, k.id, T0 + 1).await.unwrap());
    assert!(!store.delete_api_key(u.id, k.id, T0 + 2).await.unwrap(), "second delete finds nothing");
    assert_eq!(store.api_key_by_hash("hash-d").await.unwrap(), None);
    assert_eq!(store.get_api_key(u.id, k.id).await.unwrap(), None);
    assert!(store.list_api_keys(u.id).await.unwrap().is_empty());
    assert_eq!(store.update_api_key(u.id, k.id, ApiKeyPatch::default(), T0).await.unwrap(), None);
}

pub async fn api_keys_lookup_reflects_user_status(store: DynStore) {
    let u = store.create_user(new_user("ks@example.com", Role::User)).await.unwrap();
    store.create_api_key(new_key(u.id, "s", "hash-s")).await.unwrap();
    store.set_user_status(u.id, UserStatus::Disabled, T0).await.unwrap();
    let auth = store.api_key_by_hash("hash-s").await.unwrap().unwrap();
    assert_eq!(auth.user_status, UserStatus::Disabled);
}

pub async fn api_keys_hash_unique(store: DynStore) {
    let u = store.create_user(new_user("kh@example.com", Role::User)).await.unwrap();
    store.create_api_key(new_key(u.id, "one", "same-hash")).await.unwrap();
    let err = store.create_api_key(new_key(u.id, "two", "same-hash")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict("api_key")), "{err:?}");
    assert_eq!(store.list_api_keys(u.id).await.unwrap().len(), 1);
}

pub async fn ops_ping_migrate_status(store: DynStore) {
    store.ping().await.unwrap();
    let status = store.migration_status().await.unwrap();
    assert!(status.is_current(), "{status:?}");
    assert!(status.expected >= 1);
    // Migrating again, even concurrently, is a no-op.
    let (a, b) = tokio::join!(store.migrate(), store.migrate());
    a.unwrap();
    b.unwrap();
    assert_eq!(store.migration_status().await.unwrap(), status);
    let pools = store.pool_stats();
    assert!(pools.iter().any(|p| p.pool == "primary" && p.max >= 1), "{pools:?}");
    assert!(["sqlite", "mysql", "postgres"].contains(&store.kind()));
}

/// After `close`, the store refuses work instead of reconnecting.
pub async fn ops_close(store: DynStore) {
    store.ping().await.unwrap();
    store.close().await;
    assert!(store.ping().await.is_err(), "a closed store still answers");
    assert!(store.user_by_id(1).await.is_err());
}

pub async fn text_roundtrips_unicode(store: DynStore) {
    let mut nu = new_user("unicode@example.com", Role::User);
    nu.display_name = "萤火 🔥 Ünïcödé".into();
    let u = store.create_user(nu).await.unwrap();
    assert_eq!(store.user_by_id(u.id).await.unwrap().unwrap().display_name, "萤火 🔥 Ünïcödé");
    let prefs = serde_json::json!({"签名": "老旺 🚀"});
    store.put_preferences(u.id, &prefs, T0).await.unwrap();
    assert_eq!(store.get_preferences(u.id).await.unwrap(), Some(prefs));
    let k = store.create_api_key(new_key(u.id, "钥匙 🔑", "hash-u")).await.unwrap();
    assert_eq!(store.get_api_key(u.id, k.id).await.unwrap().unwrap().name, "钥匙 🔑");
}

fn entry(user_id: i64, kind: LedgerKind, amount: i64, key: &str) -> NewLedgerEntry {
    NewLedgerEntry {
        user_id,
        kind,
        amount,
        idempotency_key: key.into(),
        reference: None,
        note: None,
        actor_id: None,
        now: T0,
    }
}

fn applied(outcome: LedgerOutcome) -> LedgerEntry {
    match outcome {
        LedgerOutcome::Applied(e) => e,
        other => panic!("expected Applied, got {other:?}"),
    }
}

async fn assert_balanced(store: &DynStore, user_id: i64, expected: i64) {
    assert_eq!(store.balance(user_id).await.unwrap(), expected, "balance");
    assert_eq!(store.ledger_sum(user_id).await.unwrap(), expected, "the balance equals the ledger's sum");
}

pub async fn ledger_append_and_balance(store: DynStore) {
    let u = store.create_user(new_user("l1@example.com", Role::User)).await.unwrap();
    let admin = store.create_user(new_user("l1a@example.com", Role::Admin)).await.unwrap();
    assert_balanced(&store, u.id, 0).await;
    let mut grant = entry(u.id, LedgerKind::Grant, 100, "grant-1");
    grant.note = Some("welcome 🎁".into());
    grant.actor_id = Some(admin.id);
    grant.reference = Some("signup".into());
    let g = applied(store.append_ledger(grant, false).await.unwrap());
    assert!(g.id > 0);
    assert_eq!((g.user_id, g.kind, g.amount, g.balance_after), (u.id, LedgerKind::Grant, 100, 100));
    assert_eq!(g.idempotency_key, "grant-1");
    assert_eq!(g.note.as_deref(), Some("welcome 🎁"));
    assert_eq!(g.actor_id, Some(admin.id));
    assert_eq!(g.reference.as_deref(), Some("signup"));
    assert_eq!(g.created_at, T0);
    let c = applied(store.append_ledger(entry(u.id, LedgerKind::Charge, -30, "charge-1"), false).await.unwrap());
    assert_eq!(c.balance_after, 70);
    assert_balanced(&store, u.id, 70).await;
    let rows = store.list_ledger(u.id, None, 10).await.unwrap();
    assert_eq!(rows, vec![c, g], "newest first");
    assert_balanced(&store, admin.id, 0).await;
}

pub async fn ledger_idempotent(store: DynStore) {
    let u = store.create_user(new_user("l2@example.com", Role::User)).await.unwrap();
    let first = applied(store.append_ledger(entry(u.id, LedgerKind::Grant, 50, "same-key"), false).await.unwrap());
    // The same entry again changes nothing and returns the original.
    let again = store.append_ledger(entry(u.id, LedgerKind::Grant, 50, "same-key"), false).await.unwrap();
    assert_eq!(again, LedgerOutcome::Duplicate(first.clone()));
    assert_balanced(&store, u.id, 50).await;
    // Concurrent repeats of one key apply once.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store.append_ledger(entry(u.id, LedgerKind::Charge, -10, "charge-once"), false).await
            })
        })
        .collect();
    let mut applied_count = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            LedgerOutcome::Applied(_) => applied_count += 1,
            LedgerOutcome::Duplicate(e) => assert_eq!(e.amount, -10),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(applied_count, 1);
    assert_balanced(&store, u.id, 40).await;
    // The key reused for something else — another amount, kind or user — is a conflict,
    // changes nothing, and does not disclose the other entry.
    let other = store.create_user(new_user("l2b@example.com", Role::User)).await.unwrap();
    for clash in [
        entry(u.id, LedgerKind::Charge, -11, "charge-once"),
        entry(u.id, LedgerKind::Refund, -10, "charge-once"),
        entry(other.id, LedgerKind::Charge, -10, "charge-once"),
    ] {
        assert_eq!(store.append_ledger(clash, true).await.unwrap(), LedgerOutcome::KeyConflict);
    }
    assert_balanced(&store, u.id, 40).await;
    assert_balanced(&store, other.id, 0).await;
}

pub async fn ledger_insufficient_and_overdraft(store: DynStore) {
    let u = store.create_user(new_user("l3@example.com", Role::User)).await.unwrap();
    applied(store.append_ledger(entry(u.id, LedgerKind::Grant, 70, "g"), false).await.unwrap());
    let out = store.append_ledger(entry(u.id, LedgerKind::Charge, -100, "too-much"), false).await.unwrap();
    assert_eq!(out, LedgerOutcome::Insufficient { balance: 70 });
    assert_balanced(&store, u.id, 70).await;
    assert_eq!(store.list_ledger(u.id, None, 10).await.unwrap().len(), 1, "a refused debit writes no row");
    // The refused key was not consumed.
    let c = applied(store.append_ledger(entry(u.id, LedgerKind::Charge, -70, "too-much"), false).await.unwrap());
    assert_eq!(c.balance_after, 0);
    // An administrator's adjustment may go below zero when asked to.
    let a = applied(store.append_ledger(entry(u.id, LedgerKind::Adjust, -5, "adj"), true).await.unwrap());
    assert_eq!(a.balance_after, -5);
    assert_balanced(&store, u.id, -5).await;
    // A user who never had a row has nothing to spend.
    let v = store.create_user(new_user("l3b@example.com", Role::User)).await.unwrap();
    let out = store.append_ledger(entry(v.id, LedgerKind::Charge, -1, "v-charge"), false).await.unwrap();
    assert_eq!(out, LedgerOutcome::Insufficient { balance: 0 });
}

pub async fn ledger_concurrent_debits_never_overspend(store: DynStore) {
    let u = store.create_user(new_user("l4@example.com", Role::User)).await.unwrap();
    applied(store.append_ledger(entry(u.id, LedgerKind::Grant, 50, "g"), false).await.unwrap());
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.append_ledger(entry(u.id, LedgerKind::Charge, -5, &format!("c-{i}")), false).await
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap().unwrap() {
            LedgerOutcome::Applied(e) => {
                assert!(e.balance_after >= 0, "{e:?}");
                ok += 1
            }
            LedgerOutcome::Insufficient { balance } => {
                assert!(balance < 5, "refused with {balance} available");
                refused += 1
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((ok, refused), (10, 30));
    assert_balanced(&store, u.id, 0).await;
}

pub async fn ledger_list_pages(store: DynStore) {
    let u = store.create_user(new_user("l5@example.com", Role::User)).await.unwrap();
    let v = store.create_user(new_user("l5b@example.com", Role::User)).await.unwrap();
    for i in 0..7 {
        applied(store.append_ledger(entry(u.id, LedgerKind::Grant, 1, &format!("u-{i}")), false).await.unwrap());
    }
    applied(store.append_ledger(entry(v.id, LedgerKind::Grant, 1, "v-0"), false).await.unwrap());
    let first = store.list_ledger(u.id, None, 3).await.unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(first[0].idempotency_key, "u-6");
    let next = store.list_ledger(u.id, Some(first[2].id), 10).await.unwrap();
    assert_eq!(next.len(), 4);
    assert_eq!(next.last().unwrap().idempotency_key, "u-0");
    assert!(next.iter().chain(first.iter()).all(|e| e.user_id == u.id), "only the owner's rows");
}

fn codes(prefix: &str, n: usize) -> Vec<NewRedemptionCode> {
    (0..n).map(|i| NewRedemptionCode { code_hash: format!("{prefix}-hash-{i}"), prefix: format!("FF-{i}") }).collect()
}

pub async fn redemption_batches_and_redeem(store: DynStore) {
    let admin = store.create_user(new_user("r-admin@example.com", Role::Admin)).await.unwrap();
    let u = store.create_user(new_user("r-user@example.com", Role::User)).await.unwrap();
    let batch =
        NewRedemptionBatch { name: "launch".into(), amount: 500, expires_at: None, created_by: admin.id, now: T0 };
    let b = store.create_redemption_batch(batch, codes("a", 3)).await.unwrap();
    assert!(b.id > 0);
    assert_eq!((b.name.as_str(), b.amount, b.count, b.redeemed, b.created_by), ("launch", 500, 3, 0, admin.id));

    let out = store.redeem_code("a-hash-1", u.id, T0 + 1).await.unwrap();
    let RedeemOutcome::Redeemed(e) = out else { panic!("{out:?}") };
    assert_eq!((e.kind, e.amount, e.balance_after, e.user_id), (LedgerKind::Redeem, 500, 500, u.id));
    assert_balanced(&store, u.id, 500).await;
    assert_eq!(store.redeem_code("a-hash-1", u.id, T0 + 2).await.unwrap(), RedeemOutcome::AlreadyRedeemed);
    assert_eq!(store.redeem_code("a-hash-1", admin.id, T0 + 2).await.unwrap(), RedeemOutcome::AlreadyRedeemed);
    assert_eq!(store.redeem_code("nope", u.id, T0 + 2).await.unwrap(), RedeemOutcome::NotFound);
    assert_balanced(&store, u.id, 500).await;

    let expiring = NewRedemptionBatch {
        name: "old".into(),
        amount: 10,
        expires_at: Some(T0 + 100),
        created_by: admin.id,
        now: T0 + 5,
    };
    store.create_redemption_batch(expiring, codes("b", 1)).await.unwrap();
    assert_eq!(store.redeem_code("b-hash-0", u.id, T0 + 100).await.unwrap(), RedeemOutcome::Expired);
    assert_balanced(&store, u.id, 500).await;

    let page = store.list_redemption_batches(10, 0).await.unwrap();
    assert_eq!(page.total, 2);
    assert_eq!(page.items[0].name, "old", "newest first");
    assert_eq!((page.items[1].count, page.items[1].redeemed), (3, 1));
    assert_eq!(store.list_redemption_batches(1, 1).await.unwrap().items[0].name, "launch");
}

pub async fn redemption_concurrent_single_winner(store: DynStore) {
    let admin = store.create_user(new_user("rc-admin@example.com", Role::Admin)).await.unwrap();
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(store.create_user(new_user(&format!("rc{i}@example.com"), Role::User)).await.unwrap().id);
    }
    let batch = NewRedemptionBatch { name: "race".into(), amount: 7, expires_at: None, created_by: admin.id, now: T0 };
    store.create_redemption_batch(batch, codes("race", 1)).await.unwrap();
    let tasks: Vec<_> = users
        .iter()
        .flat_map(|&uid| [uid, uid])
        .map(|uid| {
            let store = store.clone();
            tokio::spawn(async move { (uid, store.redeem_code("race-hash-0", uid, T0 + 1).await) })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (uid, out) = t.await.unwrap();
        match out.unwrap() {
            RedeemOutcome::Redeemed(_) => winners.push(uid),
            RedeemOutcome::AlreadyRedeemed => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let mut total = 0;
    for uid in users {
        total += store.balance(uid).await.unwrap();
        assert_eq!(store.balance(uid).await.unwrap(), store.ledger_sum(uid).await.unwrap());
    }
    assert_eq!(total, 7);
}

pub async fn redemption_batch_is_all_or_nothing(store: DynStore) {
    let admin = store.create_user(new_user("ra-admin@example.com", Role::Admin)).await.unwrap();
    let batch = NewRedemptionBatch { name: "first".into(), amount: 1, expires_at: None, created_by: admin.id, now: T0 };
    store.create_redemption_batch(batch, codes("dup", 2)).await.unwrap();
    let mut clash = codes("fresh", 2);
    clash.push(NewRedemptionCode { code_hash: "dup-hash-0".into(), prefix: "FF-x".into() });
    let batch =
        NewRedemptionBatch { name: "second".into(), amount: 1, expires_at: None, created_by: admin.id, now: T0 };
    let err = store.create_redemption_batch(batch, clash).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict("redemption_code")), "{err:?}");
    let page = store.list_redemption_batches(10, 0).await.unwrap();
    assert_eq!(page.total, 1, "the failed batch left nothing");
    let u = store.create_user(new_user("ra-user@example.com", Role::User)).await.unwrap();
    assert_eq!(store.redeem_code("fresh-hash-0", u.id, T0).await.unwrap(), RedeemOutcome::NotFound);
}

fn price(model: &str, input: i64, output: i64, cached: Option<i64>, at: Millis) -> ModelPrice {
    ModelPrice {
        model: model.into(),
        price: firefly_core::money::TokenPrice {
            input_per_mtok: input,
            output_per_mtok: output,
            cached_input_per_mtok: cached,
            ..Default::default()
        },
        updated_at: at,
    }
}

pub async fn prices_put_get_list_delete(store: DynStore) {
    assert_eq!(store.model_price("gpt-4o").await.unwrap(), None);
    store.put_model_price(price("gpt-4o", 2_500, 10_000, Some(1_250), T0)).await.unwrap();
    store.put_model_price(price("deepseek-chat", 270, 1_100, None, T0)).await.unwrap();
    store.put_model_price(price("qwen-max/通义", 1, 2, None, T0)).await.unwrap();
    assert_eq!(store.model_price("gpt-4o").await.unwrap(), Some(price("gpt-4o", 2_500, 10_000, Some(1_250), T0)));
    assert_eq!(store.model_price("GPT-4O").await.unwrap(), None, "model names are exact");
    // Replacing keeps one row.
    store.put_model_price(price("gpt-4o", 2_000, 8_000, None, T0 + 1)).await.unwrap();
    let all = store.list_model_prices().await.unwrap();
    let names: Vec<&str> = all.iter().map(|p| p.model.as_str()).collect();
    assert_eq!(names, vec!["deepseek-chat", "gpt-4o", "qwen-max/通义"]);
    assert_eq!(all[1], price("gpt-4o", 2_000, 8_000, None, T0 + 1));
    assert!(store.delete_model_price("gpt-4o").await.unwrap());
    assert!(!store.delete_model_price("gpt-4o").await.unwrap());
    assert_eq!(store.model_price("gpt-4o").await.unwrap(), None);

    // Media prices round-trip, and replacing a price replaces them too.
    let mut media = price("wanx2.1-t2i-turbo", 0, 0, None, T0);
    media.price.per_image = Some(140_000);
    media.price.per_mchar = Some(15_000_000);
    media.price.per_second = Some(0);
    store.put_model_price(media.clone()).await.unwrap();
    assert_eq!(store.model_price("wanx2.1-t2i-turbo").await.unwrap(), Some(media.clone()));
    media.price.per_image = None;
    media.price.per_second = Some(100);
    media.updated_at = T0 + 5;
    store.put_model_price(media.clone()).await.unwrap();
    assert_eq!(store.model_price("wanx2.1-t2i-turbo").await.unwrap(), Some(media));
}

pub async fn groups_crud_and_membership(store: DynStore) {
    let vip = store.create_group("vip", 8_000, T0).await.unwrap();
    assert!(vip.id > 0);
    assert_eq!((vip.name.as_str(), vip.multiplier_bp, vip.members), ("vip", 8_000, 0));
    let err = store.create_group("vip", 1, T0).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict("group")), "{err:?}");
    let resale = store.create_group("reseller", 15_000, T0).await.unwrap();

    let u = store.create_user(new_user("g1@example.com", Role::User)).await.unwrap();
    let v = store.create_user(new_user("g2@example.com", Role::User)).await.unwrap();
    assert_eq!(store.user_group(u.id).await.unwrap(), None);
    assert!(store.set_user_group(u.id, Some(vip.id)).await.unwrap());
    assert!(store.set_user_group(v.id, Some(vip.id)).await.unwrap());
    assert!(!store.set_user_group(u.id, Some(vip.id + 999)).await.unwrap(), "no such group");
    assert!(!store.set_user_group(v.id + 999, Some(vip.id)).await.unwrap(), "no such user");
    assert_eq!(store.user_group(u.id).await.unwrap().unwrap().id, vip.id);
    // Moving between groups keeps one membership.
    assert!(store.set_user_group(u.id, Some(resale.id)).await.unwrap());
    assert_eq!(store.user_group(u.id).await.unwrap().unwrap().multiplier_bp, 15_000);
    let groups = store.list_groups().await.unwrap();
    let counts: Vec<(&str, i64)> = groups.iter().map(|g| (g.name.as_str(), g.members)).collect();
    assert_eq!(counts, vec![("reseller", 1), ("vip", 1)]);

    let patched = store
        .update_group(vip.id, GroupPatch { name: Some("gold".into()), multiplier_bp: Some(9_000) }, T0 + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((patched.name.as_str(), patched.multiplier_bp, patched.updated_at), ("gold", 9_000, T0 + 5));
    assert_eq!(store.user_group(v.id).await.unwrap().unwrap().name, "gold");
    let err = store.update_group(vip.id, GroupPatch { name: Some("reseller".into()), ..Default::default() }, T0).await;
    assert!(matches!(err, Err(StoreError::Conflict("group"))), "{err:?}");
    assert_eq!(store.update_group(vip.id + 999, GroupPatch::default(), T0).await.unwrap(), None);

    assert!(store.set_user_group(u.id, None).await.unwrap());
    assert_eq!(store.user_group(u.id).await.unwrap(), None);
    assert!(store.delete_group(vip.id).await.unwrap());
    assert_eq!(store.user_group(v.id).await.unwrap(), None, "members of a deleted group return to the default");
    assert!(!store.delete_group(vip.id).await.unwrap());
    assert_eq!(store.list_groups().await.unwrap().len(), 1);
}

fn spec(name: &str, priority: i64) -> ChannelSpec {
    ChannelSpec {
        name: name.into(),
        provider: "openai".into(),
        base_url: "https://api.example.com/v1".into(),
        api_version: None,
        keys_ciphertext: "v1:opaque-ciphertext".into(),
        key_hints: vec!["sk-…abcd".into(), "sk-…wxyz".into()],
        models: vec!["gpt-4o".into(), "gpt-4o-mini".into()],
        model_map: [("gpt-4o".to_owned(), "gpt-4o-2024-08-06".to_owned())].into_iter().collect(),
        priority,
        weight: 10,
        rpm_limit: Some(600),
        status: ChannelStatus::Enabled,
        status_reason: None,
    }
}

pub async fn channels_create_get_list(store: DynStore) {
    let a = store.create_channel(spec("primary 主", 10), T0).await.unwrap();
    assert!(a.id > 0);
    assert_eq!(a.spec, spec("primary 主", 10));
    assert_eq!((a.created_at, a.updated_at), (T0, T0));
    let mut azure = spec("azure", 5);
    azure.provider = "azure".into();
    azure.api_version = Some("2024-10-21".into());
    azure.model_map = Default::default();
    azure.rpm_limit = None;
    azure.key_hints = vec![];
    let b = store.create_channel(azure.clone(), T0 + 1).await.unwrap();
    let c = store.create_channel(spec("backup", 10), T0 + 2).await.unwrap();
    assert_eq!(store.channel(b.id).await.unwrap().unwrap().spec, azure);
    assert_eq!(store.channel(c.id + 100).await.unwrap(), None);
    let ids: Vec<i64> = store.list_channels().await.unwrap().iter().map(|ch| ch.id).collect();
    assert_eq!(ids, vec![a.id, c.id, b.id], "priority descending, then id");
}

pub async fn channels_replace_is_optimistic(store: DynStore) {
    let ch = store.create_channel(spec("edit", 1), T0).await.unwrap();
    let mut next = spec("edited", 3);
    next.keys_ciphertext = "v1:new".into();
    next.models = vec!["deepseek-chat".into()];
    next.model_map = Default::default();
    next.rpm_limit = None;
    let done = store.replace_channel(ch.id, next.clone(), T0, T0 + 5).await.unwrap().unwrap();
    assert_eq!(done.spec, next);
    assert_eq!((done.created_at, done.updated_at), (T0, T0 + 5));
    // A second editor who read the old version is refused and changes nothing.
    let err = store.replace_channel(ch.id, spec("stale", 9), T0, T0 + 6).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict("channel")), "{err:?}");
    assert_eq!(store.channel(ch.id).await.unwrap().unwrap().spec, next);
    assert_eq!(store.replace_channel(ch.id + 100, next, T0, T0).await.unwrap(), None);
}

pub async fn channels_status_and_delete(store: DynStore) {
    let ch = store.create_channel(spec("flaky", 1), T0).await.unwrap();
    assert!(store.set_channel_status(ch.id, ChannelStatus::AutoDisabled, Some("upstream 401"), T0 + 1).await.unwrap());
    let got = store.channel(ch.id).await.unwrap().unwrap();
    assert_eq!(got.spec.status, ChannelStatus::AutoDisabled);
    assert_eq!(got.spec.status_reason.as_deref(), Some("upstream 401"));
    assert_eq!(got.updated_at, T0 + 1);
    assert!(store.set_channel_status(ch.id, ChannelStatus::Enabled, None, T0 + 2).await.unwrap());
    let got = store.channel(ch.id).await.unwrap().unwrap();
    assert_eq!((got.spec.status, got.spec.status_reason), (ChannelStatus::Enabled, None));
    assert!(!store.set_channel_status(ch.id + 100, ChannelStatus::Disabled, None, T0).await.unwrap());
    assert!(store.delete_channel(ch.id).await.unwrap());
    assert!(!store.delete_channel(ch.id).await.unwrap());
    assert_eq!(store.channel(ch.id).await.unwrap(), None);
    assert!(store.list_channels().await.unwrap().is_empty());
}

pub async fn api_keys_limits_roundtrip(store: DynStore) {
    let u = store.create_user(new_user("kl@example.com", Role::User)).await.unwrap();
    let mut nk = new_key(u.id, "limited", "hash-limits");
    nk.tpm_limit = Some(10_000);
    nk.concurrency_limit = Some(4);
    let k = store.create_api_key(nk).await.unwrap();
    assert_eq!((k.tpm_limit, k.concurrency_limit, k.credits_used), (Some(10_000), Some(4), 0));
    let plain = store.create_api_key(new_key(u.id, "plain", "hash-plain")).await.unwrap();
    assert_eq!((plain.tpm_limit, plain.concurrency_limit), (None, None));

    let patch = |tpm, concurrency| ApiKeyPatch { tpm_limit: tpm, concurrency_limit: concurrency, ..Default::default() };
    // Clear one, leave the other.
    let k = store.update_api_key(u.id, k.id, patch(Some(None), None), T0 + 1).await.unwrap().unwrap();
    assert_eq!((k.tpm_limit, k.concurrency_limit), (None, Some(4)));
    // Set one, clear the other.
    let k = store.update_api_key(u.id, k.id, patch(Some(Some(500)), Some(None)), T0 + 2).await.unwrap().unwrap();
    assert_eq!((k.tpm_limit, k.concurrency_limit), (Some(500), None));
    // Leave both; other fields' patches do not touch them.
    let other = ApiKeyPatch { rpm_limit: Some(Some(9)), ..Default::default() };
    let k = store.update_api_key(u.id, k.id, other, T0 + 3).await.unwrap().unwrap();
    assert_eq!((k.tpm_limit, k.concurrency_limit, k.rpm_limit), (Some(500), None, Some(9)));
    let k = store.update_api_key(u.id, k.id, patch(None, Some(Some(2))), T0 + 4).await.unwrap().unwrap();
    assert_eq!((k.tpm_limit, k.concurrency_limit), (Some(500), Some(2)));

    let auth = store.api_key_by_hash("hash-limits").await.unwrap().unwrap();
    assert_eq!(auth.key, k);
    assert_eq!(store.get_api_key(u.id, k.id).await.unwrap(), Some(k.clone()));
    assert_eq!(store.list_api_keys(u.id).await.unwrap(), vec![plain.clone(), k], "same created_at: newest id first");
    assert_eq!(store.get_api_key(u.id, plain.id).await.unwrap(), Some(plain));
}

/// A successful chat request of `user_id` at `at`, charging `credits`.
fn usage(request_id: &str, user_id: i64, credits: i64, at: Millis) -> UsageRecord {
    UsageRecord {
        request_id: request_id.into(),
        user_id,
        api_key_id: None,
        channel_id: None,
        endpoint: "chat.completions".into(),
        model: "gpt-4o".into(),
        stream: false,
        input_tokens: 100,
        output_tokens: 20,
        cached_tokens: 0,
        credits,
        latency_ms: 500,
        first_token_ms: None,
        status: 200,
        error_code: None,
        error_message: None,
        created_at: at,
        hold_id: None,
    }
}

/// The log row `r` becomes, with its id and the credits really charged.
fn logged(r: &UsageRecord, id: i64, credits: i64) -> UsageLog {
    UsageLog {
        id,
        request_id: r.request_id.clone(),
        user_id: r.user_id,
        api_key_id: r.api_key_id,
        channel_id: r.channel_id,
        endpoint: r.endpoint.clone(),
        model: r.model.clone(),
        stream: r.stream,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        cached_tokens: r.cached_tokens,
        credits,
        latency_ms: r.latency_ms,
        first_token_ms: r.first_token_ms,
        status: r.status,
        error_code: r.error_code.clone(),
        error_message: r.error_message.clone(),
        created_at: r.created_at,
    }
}

fn user_logs(user_id: i64) -> UsageQuery {
    UsageQuery { user_id: Some(user_id), limit: 100, ..Default::default() }
}

async fn logged_ids(store: &DynStore, query: &UsageQuery) -> Vec<String> {
    store.list_usage_logs(query).await.unwrap().into_iter().map(|l| l.request_id).collect()
}

async fn grant(store: &DynStore, user_id: i64, amount: i64) {
    applied(
        store
            .append_ledger(entry(user_id, LedgerKind::Grant, amount, &format!("grant-{user_id}")), false)
            .await
            .unwrap(),
    );
}

fn day_row(day: i64, model: &str, counts: [i64; 5]) -> UsageDay {
    let [requests, failures, input_tokens, output_tokens, credits] = counts;
    UsageDay { day, model: model.into(), requests, failures, input_tokens, output_tokens, credits }
}

pub async fn usage_record_charges_logs_and_rolls_up(store: DynStore) {
    assert_eq!(store.record_usage(&[]).await.unwrap(), vec![]);
    let u = store.create_user(new_user("us1@example.com", Role::User)).await.unwrap();
    let v = store.create_user(new_user("us1b@example.com", Role::User)).await.unwrap();
    let k = store.create_api_key(new_key(u.id, "k", "hash-us1")).await.unwrap();
    grant(&store, u.id, 1_000).await;
    let day = T0 / DAY_MS;

    let mut streamed = usage("req-1", u.id, 100, T0);
    streamed.api_key_id = Some(k.id);
    // No such channel: the log keeps ids of channels deleted since.
    streamed.channel_id = Some(4242);
    streamed.stream = true;
    streamed.first_token_ms = Some(120);
    (streamed.input_tokens, streamed.output_tokens, streamed.cached_tokens) = (1_000, 200, 300);
    let mut second = usage("req-2", u.id, 50, T0 + 1);
    second.api_key_id = Some(k.id);
    second.model = "deepseek-chat".into();
    let mut failed = usage("req-3", u.id, 0, T0 + 2);
    failed.endpoint = "embeddings".into();
    (failed.status, failed.input_tokens, failed.output_tokens) = (502, 10, 0);
    failed.error_code = Some("upstream_error".into());
    failed.error_message = Some("上游返回 502 Bad Gateway 🔥".into());

    let out = store.record_usage(&[streamed.clone(), second.clone(), failed.clone()]).await.unwrap();
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|o| o.applied), "{out:?}");
    assert_eq!(out.iter().map(|o| o.charged).collect::<Vec<_>>(), vec![100, 50, 0]);
    let c1 = out[0].ledger.clone().expect("a charge row");
    assert_eq!((c1.user_id, c1.kind, c1.amount, c1.balance_after), (u.id, LedgerKind::Charge, -100, 900));
    assert_eq!((c1.idempotency_key.as_str(), c1.reference.as_deref()), ("charge:req-1", Some("req-1")));
    assert_eq!((c1.note.clone(), c1.actor_id, c1.created_at), (None, None, T0));
    let c2 = out[1].ledger.clone().expect("a charge row");
    assert_eq!((c2.amount, c2.balance_after, c2.idempotency_key.as_str()), (-50, 850, "charge:req-2"));
    assert_eq!(out[2].ledger, None, "nothing charged, no ledger row");

    assert_balanced(&store, u.id, 850).await;
    let ledger = store.list_ledger(u.id, None, 10).await.unwrap();
    assert_eq!(ledger.len(), 3);
    assert_eq!(&ledger[..2], &[c2, c1], "newest first");
    assert_eq!(store.get_api_key(u.id, k.id).await.unwrap().unwrap().credits_used, 150);
    assert_eq!(store.api_key_by_hash("hash-us1").await.unwrap().unwrap().key.credits_used, 150);

    let logs = store.list_usage_logs(&user_logs(u.id)).await.unwrap();
    assert_eq!(logs.len(), 3);
    assert!(logs[0].id > logs[1].id && logs[1].id > logs[2].id, "newest first");
    assert_eq!(logs[0], logged(&failed, logs[0].id, 0));
    assert_eq!(logs[1], logged(&second, logs[1].id, 50));
    assert_eq!(logs[2], logged(&streamed, logs[2].id, 100));

    let days = store.usage_days(Some(u.id), day, day).await.unwrap();
    assert_eq!(
        days,
        vec![day_row(day, "deepseek-chat", [1, 0, 100, 20, 50]), day_row(day, "gpt-4o", [2, 1, 1_010, 200, 100])]
    );
    assert_eq!(store.usage_days(Some(v.id), day, day).await.unwrap(), vec![]);
    assert_eq!(store.usage_days(None, day, day).await.unwrap(), days, "everyone's is this user's here");
}

pub async fn usage_record_is_idempotent(store: DynStore) {
    let u = store.create_user(new_user("us2@example.com", Role::User)).await.unwrap();
    grant(&store, u.id, 1_000).await;
    let day = T0 / DAY_MS;
    let batch = [usage("idem-1", u.id, 100, T0), usage("idem-free", u.id, 0, T0 + 1)];
    let first = store.record_usage(&batch).await.unwrap();
    assert!(first.iter().all(|o| o.applied));
    // The same batch again, as after a commit whose outcome was lost: nothing changes, and
    // the earlier charge is reported.
    let again = store.record_usage(&batch).await.unwrap();
    assert_eq!(
        again,
        vec![
            RecordedUsage { charged: 100, ledger: first[0].ledger.clone(), applied: false },
            RecordedUsage { charged: 0, ledger: None, applied: false },
        ]
    );
    assert_balanced(&store, u.id, 900).await;
    assert_eq!(logged_ids(&store, &user_logs(u.id)).await, vec!["idem-free", "idem-1"]);
    assert_eq!(
        store.usage_days(Some(u.id), day, day).await.unwrap(),
        vec![day_row(day, "gpt-4o", [2, 0, 200, 40, 100])]
    );

    // Old and new records in one batch: only the new one is written.
    let out = store.record_usage(&[usage("idem-1", u.id, 100, T0), usage("idem-2", u.id, 10, T0 + 2)]).await.unwrap();
    assert_eq!((out[0].applied, out[1].applied, out[1].charged), (false, true, 10));
    // One request id twice in a batch: written once.
    let out = store.record_usage(&[usage("idem-3", u.id, 5, T0 + 3), usage("idem-3", u.id, 5, T0 + 3)]).await.unwrap();
    assert!(out[0].applied && !out[1].applied, "{out:?}");
    assert_eq!((out[1].charged, out[1].ledger.clone()), (5, out[0].ledger.clone()));
    assert_balanced(&store, u.id, 885).await;
    assert_eq!(store.list_usage_logs(&user_logs(u.id)).await.unwrap().len(), 4);
    assert_eq!(store.usage_days(Some(u.id), day, day).await.unwrap()[0].requests, 4);

    // A record first written with nothing to charge stays uncharged when written again
    // after a top-up: its request id, not a ledger row, marks it written.
    let broke = store.create_user(new_user("us2b@example.com", Role::User)).await.unwrap();
    let out = store.record_usage(&[usage("idem-broke", broke.id, 50, T0)]).await.unwrap();
    assert_eq!(out, vec![RecordedUsage { charged: 0, ledger: None, applied: true }]);
    grant(&store, broke.id, 100).await;
    let out = store.record_usage(&[usage("idem-broke", broke.id, 50, T0)]).await.unwrap();
    assert_eq!(out, vec![RecordedUsage { charged: 0, ledger: None, applied: false }]);
    assert_balanced(&store, broke.id, 100).await;
    assert_eq!(store.usage_days(Some(broke.id), day, day).await.unwrap()[0].requests, 1);
}

pub async fn usage_charge_clamps_to_balance(store: DynStore) {
    let u = store.create_user(new_user("us3@example.com", Role::User)).await.unwrap();
    let k = store.create_api_key(new_key(u.id, "k", "hash-us3")).await.unwrap();
    grant(&store, u.id, 30).await;
    let day = T0 / DAY_MS;
    let mut big = usage("clamp-1", u.id, 100, T0);
    big.api_key_id = Some(k.id);
    let out = store.record_usage(std::slice::from_ref(&big)).await.unwrap();
    assert_eq!((out[0].charged, out[0].applied), (30, true));
    let charge = out[0].ledger.clone().unwrap();
    assert_eq!((charge.amount, charge.balance_after, charge.idempotency_key.as_str()), (-30, 0, "charge:clamp-1"));
    assert_balanced(&store, u.id, 0).await;
    assert_eq!(store.get_api_key(u.id, k.id).await.unwrap().unwrap().credits_used, 30);

    // Nothing left: written, but charged nothing.
    let mut broke = usage("clamp-2", u.id, 100, T0 + 1);
    broke.api_key_id = Some(k.id);
    let out = store.record_usage(std::slice::from_ref(&broke)).await.unwrap();
    assert_eq!(out, vec![RecordedUsage { charged: 0, ledger: None, applied: true }]);
    assert_balanced(&store, u.id, 0).await;
    assert_eq!(store.list_ledger(u.id, None, 10).await.unwrap().len(), 2, "grant and one charge");
    assert_eq!(store.get_api_key(u.id, k.id).await.unwrap().unwrap().credits_used, 30);
    let logs = store.list_usage_logs(&user_logs(u.id)).await.unwrap();
    assert_eq!(logs, vec![logged(&broke, logs[0].id, 0), logged(&big, logs[1].id, 30)]);
    assert_eq!(
        store.usage_days(Some(u.id), day, day).await.unwrap(),
        vec![day_row(day, "gpt-4o", [2, 0, 200, 40, 30])]
    );

    // Within a batch the balance is spent in the batch's order.
    let w = store.create_user(new_user("us3b@example.com", Role::User)).await.unwrap();
    grant(&store, w.id, 70).await;
    let mut batch: Vec<_> = (0..3).map(|i| usage(&format!("clamp-w{i}"), w.id, 60, T0)).collect();
    // Another user's key is not this user's to spend through.
    batch[0].api_key_id = Some(k.id);
    let out = store.record_usage(&batch).await.unwrap();
    assert_eq!(out.iter().map(|o| o.charged).collect::<Vec<_>>(), vec![60, 10, 0]);
    assert_balanced(&store, w.id, 0).await;
    assert_eq!(store.get_api_key(u.id, k.id).await.unwrap().unwrap().credits_used, 30);

    // A balance already below zero (an administrator's adjustment) is not charged further.
    applied(store.append_ledger(entry(w.id, LedgerKind::Adjust, -5, "clamp-adj"), true).await.unwrap());
    let out = store.record_usage(&[usage("clamp-neg", w.id, 10, T0)]).await.unwrap();
    assert_eq!((out[0].charged, out[0].applied), (0, true));
    assert_balanced(&store, w.id, -5).await;
}

pub async fn usage_batch_is_all_or_nothing(store: DynStore) {
    let u = store.create_user(new_user("us4@example.com", Role::User)).await.unwrap();
    grant(&store, u.id, 100).await;
    // An over-long request id is refused alike by every backend, and fails the batch.
    let too_long = "r".repeat(129);
    let batch = [usage("whole-1", u.id, 10, T0), usage(&too_long, u.id, 10, T0)];
    assert!(store.record_usage(&batch).await.is_err());
    assert_balanced(&store, u.id, 100).await;
    assert!(store.list_usage_logs(&user_logs(u.id)).await.unwrap().is_empty());
    assert_eq!(store.usage_days(Some(u.id), 0, i64::MAX).await.unwrap(), vec![]);
    // A record of a user who does not exist fails it too.
    assert!(store.record_usage(&[usage("whole-2", u.id, 10, T0), usage("whole-3", u.id + 999, 0, T0)]).await.is_err());
    assert_balanced(&store, u.id, 100).await;
    // The limits are inclusive, and the batch then goes through.
    let mut longest = usage(&"r".repeat(128), u.id, 10, T0);
    longest.model = "m".repeat(191);
    longest.error_message = Some("é".repeat(16_000));
    let out = store.record_usage(&[usage("whole-1", u.id, 10, T0), longest.clone()]).await.unwrap();
    assert!(out.iter().all(|o| o.applied && o.charged == 10), "{out:?}");
    let logs = store.list_usage_logs(&user_logs(u.id)).await.unwrap();
    assert_eq!(logs[0], logged(&longest, logs[0].id, 10));
    assert_balanced(&store, u.id, 80).await;
}

/// A batch bigger than any one statement a backend writes, mixing three users, records
/// written before, repeats and a charge that runs out: every outcome agrees with the rows
/// the ledger and the call log then list.
pub async fn usage_large_batch_matches_the_ledger(store: DynStore) {
    let users = [
        store.create_user(new_user("us6a@example.com", Role::User)).await.unwrap().id,
        store.create_user(new_user("us6b@example.com", Role::User)).await.unwrap().id,
        store.create_user(new_user("us6c@example.com", Role::User)).await.unwrap().id,
    ];
    for &u in &users {
        grant(&store, u, 10_000).await;
    }
    // The third user runs out part-way: 30 credits a record from 10 000.
    let record = |i: usize| {
        let user = users[i % 3];
        let credits = if i % 3 == 2 { 300 } else { 7 + (i as i64 % 5) };
        usage(&format!("big-{i}"), user, credits, T0 + i as i64)
    };
    let early: Vec<UsageRecord> = (0..20).map(record).collect();
    store.record_usage(&early).await.unwrap();
    let mut batch: Vec<UsageRecord> = (10..310).map(record).collect();
    batch.insert(250, record(200)); // a repeat of the record at 190
    let out = store.record_usage(&batch).await.unwrap();
    assert_eq!(out.len(), batch.len());
    for (i, (r, o)) in batch.iter().zip(&out).enumerate() {
        let before = r.request_id.trim_start_matches("big-").parse::<usize>().unwrap() < 20;
        assert_eq!(o.applied, !before && i != 250, "{}", r.request_id);
    }
    assert!(out[190].applied && !out[250].applied);
    assert_eq!((out[250].charged, &out[250].ledger), (out[190].charged, &out[190].ledger));

    let mut charged = std::collections::HashMap::new();
    for (r, o) in batch.iter().zip(&out) {
        if let (Some(entry), true) = (&o.ledger, o.applied) {
            assert_eq!(
                (entry.user_id, entry.amount, entry.reference.as_deref()),
                (r.user_id, -o.charged, Some(r.request_id.as_str()))
            );
            charged.insert(entry.id, entry.clone());
        } else if o.applied {
            assert_eq!(o.charged, 0, "{}: a charge without its ledger row", r.request_id);
        }
    }
    let mut listed = 0;
    for &u in &users {
        let rows = store.list_ledger(u, None, 1_000).await.unwrap();
        for row in rows.iter().filter(|row| row.kind == LedgerKind::Charge && row.created_at >= T0 + 20) {
            assert_eq!(charged.get(&row.id), Some(row), "the ledger row and the reported one");
            listed += 1;
        }
        let balance = store.balance(u).await.unwrap();
        assert_balanced(&store, u, balance).await;
        let logs =
            store.list_usage_logs(&UsageQuery { user_id: Some(u), limit: 1_000, ..Default::default() }).await.unwrap();
        let requests = (0..310).filter(|i| users[i % 3] == u).count();
        assert_eq!(logs.len(), requests, "one log row per distinct request of this user");
        let spent: i64 = logs.iter().map(|l| l.credits).sum();
        assert_eq!(10_000 - balance, spent, "the log's credits are what was charged");
    }
    assert_eq!(listed, charged.len(), "every reported charge is in the ledger once");
    // The third user's 300-credit records ran the balance out, the last one clamped.
    assert_eq!(store.balance(users[2]).await.unwrap(), 0);
}

pub async fn usage_concurrent_batches_apply_once(store: DynStore) {
    let a = store.create_user(new_user("us5a@example.com", Role::User)).await.unwrap().id;
    let b = store.create_user(new_user("us5b@example.com", Role::User)).await.unwrap().id;
    grant(&store, a, 1_000).await;
    grant(&store, b, 1_000).await;
    // Every batch holds both users' records, half of them in the other order, and two
    // records that all batches share.
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            let mut batch = vec![
                usage("shared-a", a, 10, T0),
                usage(&format!("own-b-{t}"), b, 5, T0),
                usage("shared-b", b, 7, T0),
                usage(&format!("own-a-{t}"), a, 3, T0),
            ];
            if t % 2 == 1 {
                batch.reverse();
            }
            tokio::spawn(async move { (batch.clone(), store.record_usage(&batch).await) })
        })
        .collect();
    let (mut shared_a, mut shared_b) = (0, 0);
    for t in tasks {
        let (batch, out) = t.await.unwrap();
        let out = out.unwrap();
        for (r, o) in batch.iter().zip(&out) {
            match r.request_id.as_str() {
                "shared-a" => shared_a += o.applied as i32,
                "shared-b" => shared_b += o.applied as i32,
                _ => assert!(o.applied, "{r:?}: {o:?}"),
            }
            if !o.applied {
                assert_eq!(o.charged, r.credits, "the earlier charge is reported");
            }
        }
    }
    assert_eq!((shared_a, shared_b), (1, 1));
    assert_balanced(&store, a, 1_000 - 10 - 8 * 3).await;
    assert_balanced(&store, b, 1_000 - 7 - 8 * 5).await;
    assert_eq!(store.list_usage_logs(&user_logs(a)).await.unwrap().len(), 9);
    assert_eq!(store.usage_days(Some(b), 0, i64::MAX).await.unwrap()[0].requests, 9);
}

pub async fn usage_logs_filters_and_pages(store: DynStore) {
    let a = store.create_user(new_user("us6a@example.com", Role::User)).await.unwrap().id;
    let b = store.create_user(new_user("us6b@example.com", Role::User)).await.unwrap().id;
    let ka1 = store.create_api_key(new_key(a, "a1", "hash-us6a1")).await.unwrap().id;
    let ka2 = store.create_api_key(new_key(a, "a2", "hash-us6a2")).await.unwrap().id;
    let kb = store.create_api_key(new_key(b, "b", "hash-us6b")).await.unwrap().id;
    let rows = [
        (a, Some(ka1), "gpt-4o", 200),
        (a, Some(ka2), "qwen-max", 200),
        (b, Some(kb), "gpt-4o", 200),
        (a, Some(ka1), "gpt-4o", 500),
        (a, None, "qwen-max", 429),
        (b, Some(kb), "qwen-max", 502),
        (a, Some(ka1), "gpt-4o", 399),
        (a, Some(ka2), "gpt-4o", 400),
    ];
    // One batch each, so ids follow this order.
    for (i, (user, key, model, status)) in rows.into_iter().enumerate() {
        let mut r = usage(&format!("f{i}"), user, 0, T0 + 1_000 * i as i64);
        (r.api_key_id, r.model, r.status) = (key, model.into(), status);
        store.record_usage(&[r]).await.unwrap();
    }
    let q = |f: &dyn Fn(&mut UsageQuery)| {
        let mut q = user_logs(a);
        f(&mut q);
        q
    };
    let ids = |names: &[usize]| names.iter().map(|i| format!("f{i}")).collect::<Vec<_>>();
    assert_eq!(logged_ids(&store, &user_logs(a)).await, ids(&[7, 6, 4, 3, 1, 0]));
    assert_eq!(logged_ids(&store, &q(&|q| q.api_key_id = Some(ka1))).await, ids(&[6, 3, 0]));
    assert_eq!(logged_ids(&store, &q(&|q| q.model = Some("gpt-4o".into()))).await, ids(&[7, 6, 3, 0]));
    assert_eq!(logged_ids(&store, &q(&|q| q.model = Some("GPT-4O".into()))).await, ids(&[]), "models are exact");
    assert_eq!(logged_ids(&store, &q(&|q| q.failed = Some(true))).await, ids(&[7, 4, 3]));
    assert_eq!(logged_ids(&store, &q(&|q| q.failed = Some(false))).await, ids(&[6, 1, 0]));
    let range = |q: &mut UsageQuery| (q.from, q.to) = (Some(T0 + 1_000), Some(T0 + 6_000));
    assert_eq!(logged_ids(&store, &q(&range)).await, ids(&[4, 3, 1]), "from inclusive, to exclusive");
    let combined = |q: &mut UsageQuery| {
        (q.model, q.failed, q.api_key_id) = (Some("gpt-4o".into()), Some(false), Some(ka1));
    };
    assert_eq!(logged_ids(&store, &q(&combined)).await, ids(&[6, 0]));

    // Keyset pages.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.list_usage_logs(&q(&|q| (q.limit, q.before) = (2, before))).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        before = Some(page.last().unwrap().id);
        seen.extend(page.into_iter().map(|l| l.request_id));
    }
    assert_eq!(seen, ids(&[7, 6, 4, 3, 1, 0]));
    assert_eq!(logged_ids(&store, &q(&|q| q.limit = 0)).await, ids(&[]));

    // A user's query never reaches another user's rows, even through their key.
    let b_with = |f: &dyn Fn(&mut UsageQuery)| {
        let mut q = user_logs(b);
        f(&mut q);
        q
    };
    assert_eq!(logged_ids(&store, &user_logs(b)).await, ids(&[5, 2]));
    assert_eq!(logged_ids(&store, &b_with(&|q| q.api_key_id = Some(ka1))).await, ids(&[]));
    // Everyone's (the administrator's view), filtered by a key.
    let all = UsageQuery { limit: 100, ..Default::default() };
    assert_eq!(logged_ids(&store, &all).await, ids(&[7, 6, 5, 4, 3, 2, 1, 0]));
    assert_eq!(logged_ids(&store, &UsageQuery { api_key_id: Some(kb), ..all.clone() }).await, ids(&[5, 2]));
    assert_eq!(logged_ids(&store, &UsageQuery { limit: 3, ..all }).await, ids(&[7, 6, 5]));
}

pub async fn usage_days_range_and_all_users(store: DynStore) {
    let a = store.create_user(new_user("us7a@example.com", Role::User)).await.unwrap().id;
    let b = store.create_user(new_user("us7b@example.com", Role::User)).await.unwrap().id;
    grant(&store, a, 10_000).await;
    grant(&store, b, 10_000).await;
    let d0 = 19_000;
    // Uppercase sorts before lowercase by bytes, as every backend orders models.
    let (lower, upper) = ("alpha", "Zeta");
    let rows = [
        (a, d0, 0, lower, 200, 1),
        (a, d0, DAY_MS - 1, lower, 500, 2),
        (a, d0 + 1, 0, upper, 200, 4),
        (a, d0 + 2, 5, lower, 200, 8),
        (b, d0, 10, lower, 429, 16),
        (b, d0 + 1, 20, lower, 200, 32),
        (b, d0 + 3, 30, upper, 200, 64),
    ];
    let batch: Vec<_> = rows
        .iter()
        .enumerate()
        .map(|(i, &(user, day, offset, model, status, credits))| {
            let mut r = usage(&format!("d{i}"), user, credits, day * DAY_MS + offset);
            (r.model, r.status, r.input_tokens, r.output_tokens) = (model.into(), status, 10 * credits, credits);
            r
        })
        .collect();
    assert!(store.record_usage(&batch).await.unwrap().iter().all(|o| o.applied && o.charged > 0));

    let mine = store.usage_days(Some(a), d0, d0 + 1).await.unwrap();
    assert_eq!(mine, vec![day_row(d0, lower, [2, 1, 30, 3, 3]), day_row(d0 + 1, upper, [1, 0, 40, 4, 4])]);
    assert_eq!(
        store.usage_days(Some(a), d0 + 1, d0 + 1).await.unwrap(),
        vec![day_row(d0 + 1, upper, [1, 0, 40, 4, 4])]
    );
    assert_eq!(
        store.usage_days(Some(a), d0 + 2, d0 + 9).await.unwrap(),
        vec![day_row(d0 + 2, lower, [1, 0, 80, 8, 8])]
    );
    assert_eq!(store.usage_days(Some(a), d0 + 3, d0 + 9).await.unwrap(), vec![]);
    assert_eq!(store.usage_days(Some(a), d0 + 1, d0).await.unwrap(), vec![], "an empty range");

    let everyone = store.usage_days(None, d0, d0 + 3).await.unwrap();
    assert_eq!(
        everyone,
        vec![
            day_row(d0, lower, [3, 2, 190, 19, 19]),
            day_row(d0 + 1, upper, [1, 0, 40, 4, 4]),
            day_row(d0 + 1, lower, [1, 0, 320, 32, 32]),
            day_row(d0 + 2, lower, [1, 0, 80, 8, 8]),
            day_row(d0 + 3, upper, [1, 0, 640, 64, 64]),
        ]
    );
    assert_eq!(store.usage_days(None, d0 + 1, d0 + 2).await.unwrap(), everyone[1..4].to_vec());
    assert_eq!(store.usage_days(None, d0 - 5, d0 - 1).await.unwrap(), vec![]);
}

pub async fn usage_prune_keeps_rollups(store: DynStore) {
    let u = store.create_user(new_user("us8@example.com", Role::User)).await.unwrap();
    grant(&store, u.id, 100).await;
    let mut charged = None;
    for i in 0..6 {
        let credits = if i == 0 { 5 } else { 0 };
        let out = store.record_usage(&[usage(&format!("p{i}"), u.id, credits, T0 + 1_000 * i)]).await.unwrap();
        charged = charged.or(out[0].ledger.clone());
    }
    let day = T0 / DAY_MS;
    let rollup = store.usage_days(Some(u.id), day, day).await.unwrap();
    assert_eq!(rollup, vec![day_row(day, "gpt-4o", [6, 0, 600, 120, 5])]);
    // Five rows are older than the cut; the three oldest go first.
    let cut = T0 + 4_500;
    assert_eq!(store.prune_usage_logs(cut, 3).await.unwrap(), 3);
    assert_eq!(logged_ids(&store, &user_logs(u.id)).await, vec!["p5", "p4", "p3"]);
    assert_eq!(store.prune_usage_logs(cut, 0).await.unwrap(), 0);
    assert_eq!(store.prune_usage_logs(cut, 10).await.unwrap(), 2);
    assert_eq!(store.prune_usage_logs(cut, 10).await.unwrap(), 0);
    assert_eq!(logged_ids(&store, &user_logs(u.id)).await, vec!["p5"]);
    assert_eq!(store.usage_days(Some(u.id), day, day).await.unwrap(), rollup, "rollups stay");

    // A charged record whose log row was pruned is still known by its ledger row: written
    // again, it changes nothing and comes back with that row.
    let out = store.record_usage(&[usage("p0", u.id, 5, T0)]).await.unwrap();
    assert_eq!(out, vec![RecordedUsage { charged: 5, ledger: charged, applied: false }]);
    assert_balanced(&store, u.id, 95).await;
    assert_eq!(logged_ids(&store, &user_logs(u.id)).await, vec!["p5"]);
    assert_eq!(store.usage_days(Some(u.id), day, day).await.unwrap(), rollup);
}

/// Rows as a database made before the usage migration (0005) holds them, in SQL every
/// backend runs as it is: a user with a key that has an `rpm_limit` of 60. A backend's
/// upgrade test applies the migrations before 0005, runs this, then migrates the rest and
/// calls [`upgraded_key_reads_back`].
pub const PRE_USAGE_ROWS: &str = "
    INSERT INTO users (email, display_name, search_text, password_hash, role, status, created_at, updated_at)
    VALUES ('old@example.com', 'old', 'old@example.com old', 'h', 'user', 'active', 1700000000000, 1700000000000);
    INSERT INTO api_keys (user_id, name, key_hash, prefix, enabled, models, ip_allow, rpm_limit, created_at, updated_at)
    SELECT id, 'old key', 'old-hash', 'sk-ff-old', TRUE, '[]', '[]', 60, 1700000000000, 1700000000000
    FROM users WHERE email = 'old@example.com';
";

/// The key of [`PRE_USAGE_ROWS`] after the upgrade: no token or concurrency limit, nothing
/// spent, and usage recorded against it counts.
pub async fn upgraded_key_reads_back(store: DynStore) {
    assert!(store.migration_status().await.unwrap().is_current());
    let key = store.api_key_by_hash("old-hash").await.unwrap().unwrap().key;
    assert_eq!((key.rpm_limit, key.tpm_limit, key.concurrency_limit, key.credits_used), (Some(60), None, None, 0));
    grant(&store, key.user_id, 10).await;
    let mut r = usage("after-upgrade", key.user_id, 4, T0);
    r.api_key_id = Some(key.id);
    assert_eq!(store.record_usage(&[r]).await.unwrap()[0].charged, 4);
    assert_eq!(store.get_api_key(key.user_id, key.id).await.unwrap().unwrap().credits_used, 4);
    assert_eq!(store.list_usage_logs(&user_logs(key.user_id)).await.unwrap().len(), 1);
}

/// A hold of `amount` for `user_id`, through no key, expiring long after T0.
fn new_hold(id: &str, user_id: i64, amount: i64) -> NewHold {
    NewHold { id: id.into(), user_id, api_key_id: None, key_limit: None, amount, expires_at: T0 + 60_000, now: T0 }
}

/// The same hold through key `key_id`, whose credit limit is `limit`.
fn key_hold(id: &str, user_id: i64, key_id: i64, limit: Option<i64>, amount: i64) -> NewHold {
    NewHold { api_key_id: Some(key_id), key_limit: limit, ..new_hold(id, user_id, amount) }
}

async fn held(store: &DynStore, user_id: i64) -> i64 {
    store.held_credits(user_id).await.unwrap()
}

pub async fn holds_respect_balance_and_release(store: DynStore) {
    let u = store.create_user(new_user("h1@example.com", Role::User)).await.unwrap().id;
    let v = store.create_user(new_user("h1b@example.com", Role::User)).await.unwrap().id;
    grant(&store, u, 100).await;
    grant(&store, v, 100).await;
    assert_eq!(store.hold_credits(&new_hold("h1-a", u, 60)).await.unwrap(), HoldOutcome::Held);
    assert_eq!(
        store.hold_credits(&new_hold("h1-b", u, 50)).await.unwrap(),
        HoldOutcome::Insufficient { available: 40 }
    );
    assert_eq!(held(&store, u).await, 60);
    assert_balanced(&store, u, 100).await;
    assert_eq!(held(&store, v).await, 0, "another user's holds are not this user's");
    assert!(store.release_hold("h1-a").await.unwrap());
    assert_eq!(held(&store, u).await, 0);
    assert_eq!(store.hold_credits(&new_hold("h1-b", u, 50)).await.unwrap(), HoldOutcome::Held);
    assert_eq!(held(&store, u).await, 50);
    // Releasing twice: the second time there is nothing to release.
    assert!(!store.release_hold("h1-a").await.unwrap());
    assert!(!store.release_hold("never-held").await.unwrap());
    assert_eq!(held(&store, u).await, 50);
    // The same hold again is held once, even when it would no longer fit.
    assert_eq!(store.hold_credits(&new_hold("h1-b", u, 50)).await.unwrap(), HoldOutcome::Held);
    assert_eq!(store.hold_credits(&new_hold("h1-b", u, 60)).await.unwrap(), HoldOutcome::Held);
    assert_eq!(held(&store, u).await, 50);
    assert_eq!(
        store.hold_credits(&new_hold("h1-c", u, 51)).await.unwrap(),
        HoldOutcome::Insufficient { available: 50 }
    );
    // Ids compare exactly, and the whole of the remaining balance can be held.
    assert_eq!(store.hold_credits(&new_hold("H1-B", u, 50)).await.unwrap(), HoldOutcome::Held);
    assert_eq!(held(&store, u).await, 100);
    assert!(store.release_hold("h1-b").await.unwrap());
    assert!(store.release_hold("H1-B").await.unwrap());
    assert_eq!(held(&store, u).await, 0);
    assert_balanced(&store, u, 100).await;

    // A user without a balances row has nothing to hold, but a hold of 0 never fails, and
    // is recorded, so it releases like any other.
    let w = store.create_user(new_user("h1c@example.com", Role::User)).await.unwrap().id;
    assert_eq!(store.hold_credits(&new_hold("h1-w", w, 1)).await.unwrap(), HoldOutcome::Insufficient { available: 0 });
    assert_eq!(store.hold_credits(&new_hold("h1-zero", w, 0)).await.unwrap(), HoldOutcome::Held);
    assert_eq!(held(&store, w).await, 0);
    assert!(store.release_hold("h1-zero").await.unwrap());
    assert!(!store.release_hold("h1-zero").await.unwrap());
    assert_balanced(&store, w, 0).await;
    // A balance below zero holds nothing.
    applied(store.append_ledger(entry(w, LedgerKind::Adjust, -5, "h1-adj"), true).await.unwrap());
    assert_eq!(
        store.hold_credits(&new_hold("h1-neg", w, 1)).await.unwrap(),
        HoldOutcome::Insufficient { available: 0 }
    );

    // Ids are at most 64 characters, amounts never negative, users real: refused alike.
    let longest = "i".repeat(MAX_HOLD_ID_LEN);
    assert_eq!(store.hold_credits(&new_hold(&longest, v, 1)).await.unwrap(), HoldOutcome::Held);
    assert!(store.hold_credits(&new_hold(&"i".repeat(MAX_HOLD_ID_LEN + 1), v, 1)).await.is_err());
    assert!(store.hold_credits(&new_hold("h1-negative", v, -1)).await.is_err());
    assert!(store.hold_credits(&new_hold("h1-nobody", v + 999, 0)).await.is_err());
    assert_eq!(held(&store, v).await, 1);
    assert!(store.release_hold(&longest).await.unwrap());
    assert_eq!(held(&store, v).await, 0);
}

pub async fn holds_respect_key_limit(store: DynStore) {
    let u = store.create_user(new_user("h2@example.com", Role::User)).await.unwrap().id;
    let mut nk = new_key(u, "limited", "hash-h2");
    nk.credit_limit = Some(100);
    let k = store.create_api_key(nk).await.unwrap();
    assert_eq!(k.credits_used, 0);
    let open = store.create_api_key(new_key(u, "open", "hash-h2-open")).await.unwrap();
    grant(&store, u, 1_000).await;

    let limited = |id: &str, amount| key_hold(id, u, k.id, Some(100), amount);
    assert_eq!(store.hold_credits(&limited("h2-a", 70)).await.unwrap(), HoldOutcome::Held);
    assert_eq!(store.hold_credits(&limited("h2-b", 40)).await.unwrap(), HoldOutcome::KeyLimitReached { available: 30 });
    // The key's limit binds only that key; the user's balance binds them all.
    assert_eq!(store.hold_credits(&key_hold("h2-open", u, open.id, None, 900)).await.unwrap(), HoldOutcome::Held);
    assert_eq!(store.hold_credits(&limited("h2-c", 31)).await.unwrap(), HoldOutcome::Insufficient { available: 30 });
    assert!(store.release_hold("h2-open").await.unwrap());
    assert_eq!(held(&store, u).await, 70);

    // Settling releases the hold and raises what the key used.
    let mut r = usage("h2-req", u, 50, T0);
    r.api_key_id = Some(k.id);
    r.hold_id = Some("h2-a".into());
    let out = store.record_usage(&[r]).await.unwrap();
    assert_eq!((out[0].charged, out[0].applied), (50, true));
    assert!(!store.release_hold("h2-a").await.unwrap(), "the record released it");
    assert_eq!(held(&store, u).await, 0);
    assert_eq!(store.get_api_key(u, k.id).await.unwrap().unwrap().credits_used, 50);
    assert_balanced(&store, u, 950).await;

    // The key check counts what was used and what is held.
    assert_eq!(store.hold_credits(&limited("h2-d", 51)).await.unwrap(), HoldOutcome::KeyLimitReached { available: 50 });
    assert_eq!(store.hold_credits(&limited("h2-e", 40)).await.unwrap(), HoldOutcome::Held);
    assert_eq!(store.hold_credits(&limited("h2-f", 11)).await.unwrap(), HoldOutcome::KeyLimitReached { available: 10 });
    // A hold through the key without its limit still counts against it.
    assert_eq!(store.hold_credits(&key_hold("h2-g", u, k.id, None, 10)).await.unwrap(), HoldOutcome::Held);
    assert_eq!(store.hold_credits(&limited("h2-h", 1)).await.unwrap(), HoldOutcome::KeyLimitReached { available: 0 });
    assert!(store.release_hold("h2-g").await.unwrap());
    assert!(store.release_hold("h2-e").await.unwrap());
    assert_eq!(store.hold_credits(&limited("h2-i", 50)).await.unwrap(), HoldOutcome::Held);
    assert_eq!(held(&store, u).await, 50);

    // Another user's key is not this user's to count against: nothing used, nothing held.
    let v = store.create_user(new_user("h2b@example.com", Role::User)).await.unwrap().id;
    grant(&store, v, 1_000).await;
    assert_eq!(store.hold_credits(&key_hold("h2-v", v, k.id, Some(100), 100)).await.unwrap(), HoldOutcome::Held);
    assert!(store.release_hold("h2-v").await.unwrap());
    assert_eq!(held(&store, v).await, 0);
    assert_eq!(
        store.hold_credits(&limited("h2-j", 1)).await.unwrap(),
        HoldOutcome::KeyLimitReached { available: 0 },
        "the other user's hold left this key alone"
    );
}

pub async fn holds_concurrent_never_exceed_balance(store: DynStore) {
    let u = store.create_user(new_user("h3@example.com", Role::User)).await.unwrap().id;
    grant(&store, u, 1_000).await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.hold_credits(&new_hold(&format!("h3-{i}"), u, 100)).await })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap().unwrap() {
            HoldOutcome::Held => ok += 1,
            HoldOutcome::Insufficient { available } => {
                assert!(available < 100, "refused with {available} available");
                refused += 1
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((ok, refused), (10, 40));
    assert_eq!(held(&store, u).await, 1_000);
    assert_balanced(&store, u, 1_000).await;

    // Concurrent releases of the same holds release each once.
    let tasks: Vec<_> = (0..50)
        .flat_map(|i| [i, i])
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.release_hold(&format!("h3-{i}")).await })
        })
        .collect();
    let mut released = 0;
    for t in tasks {
        released += t.await.unwrap().unwrap() as i32;
    }
    assert_eq!(released, 10);
    assert_eq!(held(&store, u).await, 0);
}

pub async fn holds_expire(store: DynStore) {
    let u = store.create_user(new_user("h4@example.com", Role::User)).await.unwrap().id;
    let v = store.create_user(new_user("h4b@example.com", Role::User)).await.unwrap().id;
    let mut nk = new_key(u, "limited", "hash-h4");
    nk.credit_limit = Some(200);
    let k = store.create_api_key(nk).await.unwrap().id;
    grant(&store, u, 1_000).await;
    grant(&store, v, 1_000).await;
    let expiring = |mut h: NewHold, at: Millis| {
        h.expires_at = at;
        h
    };
    for h in [
        expiring(key_hold("h4-a", u, k, Some(200), 100), T0 + 10),
        expiring(new_hold("h4-b", u, 50), T0 + 20),
        expiring(key_hold("h4-c", u, k, Some(200), 30), T0 + 1_000),
        expiring(new_hold("h4-d", v, 10), T0 + 5),
        expiring(new_hold("h4-e", v, 20), T0 + 21),
    ] {
        assert_eq!(store.hold_credits(&h).await.unwrap(), HoldOutcome::Held, "{h:?}");
    }
    assert_eq!(store.expire_holds(T0).await.unwrap(), 0, "none expired yet");
    assert_eq!((held(&store, u).await, held(&store, v).await), (180, 30));
    // Expired at `expires_at` itself.
    assert_eq!(store.expire_holds(T0 + 20).await.unwrap(), 3);
    assert_eq!((held(&store, u).await, held(&store, v).await), (30, 20));
    assert!(!store.release_hold("h4-a").await.unwrap(), "expired holds are gone");
    assert_eq!(store.expire_holds(T0 + 20).await.unwrap(), 0);
    // The key holds only what is left: h4-c.
    assert_eq!(
        store.hold_credits(&key_hold("h4-f", u, k, Some(200), 171)).await.unwrap(),
        HoldOutcome::KeyLimitReached { available: 170 }
    );
    assert!(store.release_hold("h4-c").await.unwrap());
    assert_eq!(store.expire_holds(T0 + 1_000_000).await.unwrap(), 1, "h4-e");
    assert_eq!((held(&store, u).await, held(&store, v).await), (0, 0));
    assert_eq!(store.hold_credits(&key_hold("h4-g", u, k, Some(200), 200)).await.unwrap(), HoldOutcome::Held);
    assert!(store.release_hold("h4-g").await.unwrap());
    assert_balanced(&store, u, 1_000).await;

    // Several instances expiring at once release each hold once.
    for i in 0..30 {
        let (user, key) = if i % 3 == 0 { (v, None) } else { (u, Some(k)) };
        let h = NewHold { api_key_id: key, ..expiring(new_hold(&format!("h4-x{i}"), user, 5), T0 + i) };
        assert_eq!(store.hold_credits(&h).await.unwrap(), HoldOutcome::Held);
    }
    assert_eq!((held(&store, u).await, held(&store, v).await), (100, 50));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.expire_holds(T0 + 100).await })
        })
        .collect();
    let mut expired = 0;
    for t in tasks {
        expired += t.await.unwrap().unwrap();
    }
    assert_eq!(expired, 30);
    assert_eq!((held(&store, u).await, held(&store, v).await), (0, 0));
    assert_eq!(store.hold_credits(&key_hold("h4-h", u, k, Some(200), 200)).await.unwrap(), HoldOutcome::Held);
}

pub async fn usage_record_releases_its_hold(store: DynStore) {
    let u = store.create_user(new_user("h5@example.com", Role::User)).await.unwrap().id;
    let k = store.create_api_key(new_key(u, "k", "hash-h5")).await.unwrap().id;
    grant(&store, u, 100).await;
    assert_eq!(store.hold_credits(&key_hold("h5-req:hold", u, k, None, 80)).await.unwrap(), HoldOutcome::Held);
    assert_eq!(held(&store, u).await, 80);
    let mut r = usage("h5-req", u, 30, T0);
    r.api_key_id = Some(k);
    r.hold_id = Some("h5-req:hold".into());
    let out = store.record_usage(std::slice::from_ref(&r)).await.unwrap();
    assert_eq!((out[0].charged, out[0].applied), (30, true));
    assert_eq!(held(&store, u).await, 0);
    assert!(!store.release_hold("h5-req:hold").await.unwrap(), "released with the charge");
    assert_balanced(&store, u, 70).await;
    assert_eq!(store.get_api_key(u, k).await.unwrap().unwrap().credits_used, 30);
    // Recording the same batch again changes nothing.
    let again = store.record_usage(std::slice::from_ref(&r)).await.unwrap();
    assert_eq!(again, vec![RecordedUsage { charged: 30, ledger: out[0].ledger.clone(), applied: false }]);
    assert_eq!(held(&store, u).await, 0);
    assert_balanced(&store, u, 70).await;
    // ... but a record written before still releases its hold, if there is one.
    assert_eq!(store.hold_credits(&key_hold("h5-req:hold", u, k, Some(100), 20)).await.unwrap(), HoldOutcome::Held);
    assert_eq!(held(&store, u).await, 20);
    assert!(!store.record_usage(std::slice::from_ref(&r)).await.unwrap()[0].applied);
    assert_eq!(held(&store, u).await, 0);
    assert_eq!(
        store.hold_credits(&key_hold("h5-probe", u, k, Some(90), 61)).await.unwrap(),
        HoldOutcome::KeyLimitReached { available: 60 },
        "the key holds nothing more"
    );

    // A hold of the whole balance does not stand in the way of its own charge.
    assert_eq!(store.hold_credits(&new_hold("h5-all:hold", u, 70)).await.unwrap(), HoldOutcome::Held);
    let mut all = usage("h5-all", u, 70, T0 + 1);
    all.hold_id = Some("h5-all:hold".into());
    assert_eq!(store.record_usage(&[all]).await.unwrap()[0].charged, 70);
    assert_eq!(held(&store, u).await, 0);
    assert_balanced(&store, u, 0).await;

    // A record releases only its own user's hold.
    let v = store.create_user(new_user("h5b@example.com", Role::User)).await.unwrap().id;
    grant(&store, v, 50).await;
    assert_eq!(store.hold_credits(&new_hold("h5-v:hold", v, 50)).await.unwrap(), HoldOutcome::Held);
    let mut wrong = usage("h5-wrong", u, 0, T0 + 2);
    wrong.hold_id = Some("h5-v:hold".into());
    assert!(store.record_usage(&[wrong]).await.unwrap()[0].applied);
    assert_eq!(held(&store, v).await, 50);
    // A batch that fails releases nothing.
    let mut settle = usage("h5-v", v, 10, T0 + 3);
    settle.hold_id = Some("h5-v:hold".into());
    assert!(store.record_usage(&[settle.clone(), usage(&"r".repeat(129), v, 1, T0)]).await.is_err());
    assert_eq!(held(&store, v).await, 50);
    assert_balanced(&store, v, 50).await;
    // A batch of several records, and a hold gone already: fine.
    let mut gone = usage("h5-gone", v, 5, T0 + 4);
    gone.hold_id = Some("h5-expired-long-ago".into());
    let out = store.record_usage(&[settle, gone]).await.unwrap();
    assert_eq!(out.iter().map(|o| (o.charged, o.applied)).collect::<Vec<_>>(), vec![(10, true), (5, true)]);
    assert_eq!(held(&store, v).await, 0);
    assert_balanced(&store, v, 35).await;
}

/// Holds, releases, usage batches (of two users, in either order) and expiry, all at
/// once: nothing deadlocks or fails, and once everything is released the held totals
/// are back to zero, on users and keys alike.
pub async fn holds_contention_with_usage_and_expiry(store: DynStore) {
    let mut users = Vec::new();
    for n in 0..3 {
        let u = store.create_user(new_user(&format!("h6-{n}@example.com"), Role::User)).await.unwrap().id;
        let mut nk = new_key(u, "k", &format!("hash-h6-{n}"));
        nk.credit_limit = Some(5_000);
        let k = store.create_api_key(nk).await.unwrap().id;
        grant(&store, u, 10_000).await;
        users.push((u, k));
    }
    let users = std::sync::Arc::new(users);
    let tasks: Vec<_> = (0..12usize)
        .map(|t| {
            let (store, users) = (store.clone(), users.clone());
            tokio::spawn(async move {
                let (u, k) = users[t % 3];
                let (other, _) = users[(t + 1) % 3];
                for i in 0..8 {
                    let id = format!("h6-{t}-{i}");
                    let mut h = key_hold(&id, u, k, Some(5_000), 10);
                    // Some expire while their request runs.
                    h.expires_at = if i % 4 == 0 { T0 + 500 } else { T0 + 60_000 };
                    assert_eq!(store.hold_credits(&h).await.unwrap(), HoldOutcome::Held);
                    match i % 3 {
                        0 => {
                            store.release_hold(&id).await.unwrap();
                        }
                        1 => {
                            let mut own = usage(&format!("h6-req-{t}-{i}"), u, 3, T0);
                            (own.api_key_id, own.hold_id) = (Some(k), Some(id));
                            let mut batch = vec![own, usage(&format!("h6-other-{t}-{i}"), other, 1, T0)];
                            if t % 2 == 1 {
                                batch.reverse();
                            }
                            store.record_usage(&batch).await.unwrap();
                        }
                        _ => {
                            store.expire_holds(T0 + 1_000).await.unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    store.expire_holds(T0 + 1_000_000).await.unwrap();
    for &(u, k) in users.iter() {
        assert_eq!(held(&store, u).await, 0);
        let used = store.get_api_key(u, k).await.unwrap().unwrap().credits_used;
        assert_eq!(used, 4 * 3 * 3, "three records of 3 credits in each of four tasks");
        let all = key_hold(&format!("h6-all-{u}"), u, k, Some(5_000), 5_000 - used);
        assert_eq!(store.hold_credits(&all).await.unwrap(), HoldOutcome::Held, "the key holds nothing");
        assert_eq!(store.balance(u).await.unwrap(), store.ledger_sum(u).await.unwrap());
        assert_eq!(store.balance(u).await.unwrap(), 10_000 - used - 4 * 3);
    }
}

/// Rows written before the holds migration (0006): a user with a balance and a key
/// that has spent some of its limit. Portable SQL, run on every backend.
pub const PRE_HOLDS_ROWS: &str = "
    INSERT INTO users (email, display_name, search_text, password_hash, role, status, created_at, updated_at)
    VALUES ('held@example.com', 'held', 'held@example.com held', 'h', 'user', 'active', 1700000000000, 1700000000000);
    INSERT INTO balances (user_id, balance, updated_at)
    SELECT id, 100, 1700000000000 FROM users WHERE email = 'held@example.com';
    INSERT INTO ledger (user_id, kind, amount, balance_after, idempotency_key, created_at)
    SELECT id, 'grant', 100, 100, 'held-grant', 1700000000000 FROM users WHERE email = 'held@example.com';
    INSERT INTO api_keys (user_id, name, key_hash, prefix, enabled, models, ip_allow, credit_limit, credits_used,
                          created_at, updated_at)
    SELECT id, 'held key', 'held-hash', 'sk-ff-held', TRUE, '[]', '[]', 50, 10, 1700000000000, 1700000000000
    FROM users WHERE email = 'held@example.com';
";

/// The rows of [`PRE_HOLDS_ROWS`] after the upgrade: nothing held, and holds count
/// against the old balance and the old key's spending.
pub async fn upgraded_balance_holds(store: DynStore) {
    assert!(store.migration_status().await.unwrap().is_current());
    let key = store.api_key_by_hash("held-hash").await.unwrap().unwrap().key;
    let u = key.user_id;
    assert_eq!(held(&store, u).await, 0);
    assert_balanced(&store, u, 100).await;
    let limited = |id: &str, amount| key_hold(id, u, key.id, key.credit_limit, amount);
    assert_eq!(
        store.hold_credits(&limited("old-1", 41)).await.unwrap(),
        HoldOutcome::KeyLimitReached { available: 40 }
    );
    assert_eq!(store.hold_credits(&limited("old-1", 40)).await.unwrap(), HoldOutcome::Held);
    assert_eq!(
        store.hold_credits(&new_hold("old-2", u, 61)).await.unwrap(),
        HoldOutcome::Insufficient { available: 60 }
    );
    assert_eq!(store.expire_holds(T0 + 1_000_000).await.unwrap(), 1);
    assert_eq!(held(&store, u).await, 0);
}
