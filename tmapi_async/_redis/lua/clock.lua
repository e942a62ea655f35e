-- The token's clock, in microseconds: Redis's TIME, clamped against jumps.
-- KEYS[1] of the script including it is the token's state, where the clock is kept:
-- 'clock' (the last time given) and 'clock_raw' (the TIME it was given at).
-- It never goes back, and moves at most `step` microseconds from one call to the next:
-- a clock stepped back frees no lease and refills no rate, a clock stepped forward (or
-- a Redis frozen or restarted meanwhile) counts as `step` at most. Processes call it at
-- least every heartbeat, well within the step, so it otherwise runs as TIME does.
local function token_clock(step)
    local t = redis.call('TIME')
    local raw = tonumber(t[1]) * 1000000 + tonumber(t[2])
    local kept = redis.call('HMGET', KEYS[1], 'clock', 'clock_raw')
    local now = raw
    if kept[1] and kept[2] then
        now = tonumber(kept[1]) + math.min(math.max(raw - tonumber(kept[2]), 0), step)
    end
    redis.call('HSET', KEYS[1], 'clock', string.format('%.0f', now),
               'clock_raw', string.format('%.0f', raw))
    return now
end
