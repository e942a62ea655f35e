-- The token's adaptive in-flight limit (AIMD), shared by every process.
-- KEYS[1] the token's state   KEYS[2] its leases
-- ARGV[1] 'cut' or 'grow'     ARGV[2] default concurrency
-- cut:  ARGV[3] the refused request's ticket, ARGV[4] its lease, ARGV[5] lease seconds
-- grow: ARGV[3] how many successes to count
-- Reply: the limit in force, as a string (it is fractional).
--#include clock
local state = redis.call('HMGET', KEYS[1], 'concurrency', 'limit', 'ceiling', 'cut_after', 'seq')
local concurrency = tonumber(state[1]) or tonumber(ARGV[2])
local limit = math.min(tonumber(state[2]) or concurrency, concurrency)
local ceiling = tonumber(state[3]) or concurrency

if ARGV[1] == 'cut' then
    local now = token_clock((tonumber(ARGV[5]) or 5) * 500000)
    redis.call('ZREM', KEYS[2], ARGV[4])
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
    -- The server's limit is at most what was in flight besides the refused request, plus it.
    ceiling = math.min(ceiling, redis.call('ZCARD', KEYS[2]) + 1)
    -- Refusals of requests sent before the last cut are the same cohort: cut once.
    if tonumber(ARGV[3]) > (tonumber(state[4]) or 0) then
        limit = math.max(1, limit / 2)
        redis.call('HSET', KEYS[1], 'cut_after', state[5] or 0)
    end
else
    -- Grow about one per round trip up to just below the last refusal, then probe
    -- ten times slower: every refusal is a billed request.
    for _ = 1, tonumber(ARGV[3]) do
        if limit >= concurrency then break end
        local step = 0.1
        if limit + 1 < ceiling then step = 1 end
        limit = math.min(concurrency, limit + step / limit)
        ceiling = math.max(ceiling, limit)
    end
end
redis.call('HSET', KEYS[1], 'limit', string.format('%.17g', limit),
           'ceiling', string.format('%.17g', ceiling))
return string.format('%.17g', limit)
