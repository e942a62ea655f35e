-- The token's adaptive in-flight limit, shared by every process: the rules of
-- tmapi_async/_adaptive.py (InFlightLimit), line for line; the tests hold both to the same
-- event sequences. A refusal at depth k puts the limit at k - 1 (the ceiling); before any
-- refusal each success at half the limit or more adds one; at the ceiling a probe one
-- above comes after `probe_gap` successes, doubled after each refused probe.
-- KEYS[1] the token's state
-- ARGV[1] 'refused' or 'succeeded'   ARGV[2] default concurrency
-- ARGV[3] START   ARGV[4] PROBE_FIRST   ARGV[5] PROBE_LAST
-- ARGV[6..] the depth and epoch each answered request was sent at, in pairs
-- Reply: {limit, ceiling (-1 before any refusal), epoch}
local state = redis.call('HMGET', KEYS[1], 'concurrency', 'limit', 'ceiling', 'epoch',
                         'probe_gap', 'since_probe')
local concurrency = tonumber(state[1]) or tonumber(ARGV[2])
local start, probe_first, probe_last = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local limit = math.min(math.floor(tonumber(state[2]) or math.min(concurrency, start)), concurrency)
local ceiling = tonumber(state[3])  -- nil until the first refusal
if ceiling and ceiling < 0 then ceiling = nil end
local epoch = tonumber(state[4]) or 0
local gap = tonumber(state[5]) or probe_first
local since = tonumber(state[6]) or 0
local refused = ARGV[1] == 'refused'

for i = 6, #ARGV - 1, 2 do
    local depth, sent_epoch = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
    local probing = ceiling ~= nil and limit > ceiling
    if refused then
        local found = math.max(1, depth - 1)
        if ceiling == nil or found < ceiling then
            ceiling = found
            epoch = epoch + 1
        elseif probing and sent_epoch == epoch then  -- the probe failed: probe less often
            gap = math.min(probe_last, gap * 2)
        end
        limit = ceiling
        since = 0
    elseif ceiling == nil then
        if depth * 2 >= limit then limit = math.min(concurrency, limit + 1) end
    elseif depth > ceiling and sent_epoch == epoch then  -- a probe went through
        ceiling = math.min(concurrency, depth)
        gap = probe_first
        limit = math.min(concurrency, ceiling + 1)
        since = 0
    elseif limit < concurrency and not probing then
        since = since + 1
        if since >= gap then
            limit = ceiling + 1
            since = 0
        end
    end
end
redis.call('HSET', KEYS[1], 'limit', limit, 'ceiling', ceiling or -1, 'epoch', epoch,
           'probe_gap', gap, 'since_probe', since)
return {limit, ceiling or -1, epoch}
