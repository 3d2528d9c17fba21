//! The store's conformance suite. Every test is written once, as an async
//! function taking a fresh, migrated `SqlStore`, and runs on SQLite (a new
//! file per test) and, when `PORTCULLIS_TEST_POSTGRES_URL` is set, on
//! PostgreSQL (a new schema per test, dropped afterwards), so both backends
//! are held to the same behaviour. Without that variable the PostgreSQL
//! tests are skipped, or fail when `PORTCULLIS_TEST_REQUIRE_SERVICES` is
//! set. The tests live in one file per part of the store; the list below
//! runs them.

mod access_tokens;
mod admins;
mod audit;
mod fixtures;
mod harness;
mod health;
mod import;
mod logins;
mod outbox;
mod overview;
mod passkeys;
mod posts;
#[allow(dead_code, reason = "shared by several test binaries, each using the services it needs")]
#[path = "../support/services.rs"]
mod services;
mod sessions;
mod throttle;
mod two_factor;
mod users;

/// Runs each listed test on both backends, as `sqlite::<name>` and `postgres::<name>`.
macro_rules! conformance {
    ($($module:ident: [$($name:ident),+ $(,)?]),+ $(,)?) => {
        mod sqlite {
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::harness::run_sqlite(crate::$module::$name).await;
                }
            )+)+
        }
        mod postgres {
            $($(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(portcullis_no_postgres, ignore = "needs PostgreSQL: set PORTCULLIS_TEST_POSTGRES_URL")]
                async fn $name() {
                    crate::harness::run_postgres(stringify!($name), crate::$module::$name).await;
                }
            )+)+
        }
    };
}

conformance! {
    users: [
        insert_user_returns_the_stored_user,
        usernames_are_unique_case_insensitively,
        emails_are_unique_case_insensitively,
        concurrent_inserts_of_one_username_let_exactly_one_win,
        concurrent_inserts_of_one_email_let_exactly_one_win,
        user_by_login_finds_normalized_username_or_email,
        list_users_pages_by_id,
        list_users_shows_current_locks,
        list_users_searches_username_and_email_case_insensitively,
        list_users_search_matches_metacharacters_literally,
        list_users_search_pages_by_id,
        password_updates_keep_or_change_the_stamp,
    ],
    admins: [
        set_admin_grants_and_revokes,
        set_admin_refuses_to_demote_the_last_admin,
        set_admin_revokes_a_non_admin_when_there_is_no_admin,
        concurrent_demotions_leave_an_admin,
        set_admin_lock_never_locks_the_last_unlocked_admin,
        concurrent_admin_locks_leave_an_admin_unlocked,
        delete_user_cascades_to_posts_and_sessions,
        delete_user_refuses_the_last_admin,
        concurrent_deletion_and_demotion_leave_an_admin,
    ],
    health: [ping_answers],
    sessions: [
        session_round_trips_with_its_user,
        session_needs_an_existing_user_and_a_unique_id,
        touch_session_sets_last_seen,
        delete_session_deletes_only_the_owners_session,
        delete_user_sessions_keeps_the_exception,
        user_sessions_lists_live_sessions_newest_first,
        purge_sessions_removes_expired_and_idle_sessions,
    ],
    throttle: [
        reserve_attempt_counts_and_locks_at_the_threshold,
        reserve_attempt_with_threshold_one_locks_at_once,
        reserve_attempt_restarts_after_the_lock_passes,
        reserve_attempt_restarts_when_the_window_has_passed,
        concurrent_reserve_attempts_count_each_attempt_once,
        purge_attempts_forgets_only_counters_that_would_start_again,
        clear_attempts_forgets_only_the_given_keys,
    ],
    posts: [
        post_round_trips_with_its_author,
        update_post_changes_title_content_and_time,
        delete_post_removes_only_that_post,
        list_posts_pages_newest_first,
        list_posts_of_one_author,
    ],
    audit: [
        audited_changes_record_their_event,
        refused_changes_record_nothing,
        a_change_whose_event_cannot_be_written_is_undone,
    ],
    outbox: [outbox_claims_each_mail_once_and_marks_a_batch_sent],
    import: [
        taken_names_are_found_without_regard_to_case,
        a_batch_writes_users_with_their_posts_and_locks_and_skips_taken_names,
    ],
    access_tokens: [
        tokens_round_trip_with_their_user_and_event,
        a_token_whose_event_cannot_be_written_is_not_stored,
        delete_touches_only_the_owners_token,
        concurrent_touches_from_one_reading_note_one_use,
        a_token_is_revealed_once_and_only_to_its_owner,
        an_admin_lock_and_deleting_the_user_end_their_tokens,
    ],
    overview: [
        daily_events_count_each_kind_per_day_from_the_first,
        user_counts_count_two_factor_and_passkey_users_once,
    ],
    passkeys: [
        a_ceremony_is_taken_once_by_its_kind,
        concurrent_takes_of_a_ceremony_let_exactly_one_win,
        purge_ceremonies_removes_only_expired_ones,
        passkeys_round_trip_with_their_mail_and_event,
        rename_and_delete_touch_only_the_owners_passkey,
        a_use_moves_the_counter_forward_only,
        deleting_a_user_deletes_their_passkeys_and_ceremonies,
        a_passkey_whose_event_cannot_be_written_is_not_stored,
        delete_user_passkeys_removes_all_of_one_users,
    ],
    logins: [
        open_session_writes_the_whole_login,
        a_login_whose_event_cannot_be_written_opens_nothing,
    ],
    two_factor: [
        enrolment_is_pending_until_confirmed_with_its_own_secret,
        accept_step_moves_only_forward_once_under_races,
        recovery_codes_work_once_and_are_replaced_whole,
        disabling_removes_secret_codes_and_pending_sign_ins,
        a_two_factor_change_whose_event_cannot_be_written_is_undone,
        pending_sign_ins_round_trip_delete_once_and_purge,
    ],
}
