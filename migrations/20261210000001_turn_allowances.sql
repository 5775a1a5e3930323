-- Per-user turn limits that hold however a user's requests are spread over server processes.
--
-- One row per user who started a turn. `next_turn_at` is the user's turn-rate bucket kept as one instant (the
-- generic cell rate algorithm: each turn moves it one interval, 60 s / TURNS_PER_MINUTE, past the later of itself
-- and now; a turn is allowed while it stays within a minute of now, so a full bucket allows a burst of the whole
-- minute's turns). Starting a turn locks the row in the transaction that stores the turn, which orders one user's
-- starts across processes: the count of their streaming answers (MAX_CONCURRENT_TURNS_PER_USER) that follows the
-- lock sees every turn another process stored before it. A new table: instant, safe on a live database.
create table chat.turn_allowances (
    owner_id     text        primary key,
    next_turn_at timestamptz not null
);
