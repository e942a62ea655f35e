-- Admit up to N requests of a token, or say why none: all gates at once, on Redis's clock.
-- KEYS[1] the token's state (hash)   KEYS[2] its in-flight leases (sorted set, by expiry)
-- KEYS[3] its fatal record (hash)
-- ARGV[1] owner id of the process    ARGV[2] lease seconds
-- ARGV[3..5] default rate, burst, concurrency (until someone sets the token's limits)
-- ARGV[6] seconds of send jitter the burst keeps back
-- ARGV[7] N: requests waiting in the process (admitted together when the gates allow)
-- ARGV[8] START: the adaptive limit before anything is learnt (tmapi_async/_adaptive.py)
-- ARGV[9] horizon: seconds ahead the rate may be booked (the process holds each request
--         until its time: one round trip admits a run of them, instead of one ask each)
-- ARGV[10] reach: seconds ahead one request may be booked past the horizon (so that the
--         processes of a token waiting for the rate do not all ask again at the same time)
-- ARGV[11..] leases this process released since its last call (freed here: a round trip less)
-- Reply: {'fatal', kind, code, status, message}, or
--        {verdict, n, limit, in_flight, rate, burst, concurrency, count, epoch, ceiling,
--         due, interval} where verdict is
--        'ok' (tickets n .. n+count-1, the i-th of them (from 0) to leave `due + i *
--        interval` microseconds from now, or at once if that is not positive; the leases
--        are "owner:ticket"; in_flight counts them: the i-th was sent at depth
--        in_flight - count + 1 + i), 'wait' (n = microseconds until the rate or a pause
--        allows one: a pause, or the rate beyond the reach) or 'full' (every in-flight slot
--        is taken). epoch and ceiling (-1
--        before any refusal) are the adaptive limit's (throttle_adapt.lua).
local fatal = redis.call('HMGET', KEYS[3], 'kind', 'code', 'status', 'message')
if fatal[1] then
    return {'fatal', fatal[1], fatal[2] or '', fatal[3] or '', fatal[4] or ''}
end
--#include clock
local now = token_clock(tonumber(ARGV[2]) * 500000)  -- microseconds; steps of half a lease

local state = redis.call('HMGET', KEYS[1], 'rate', 'burst', 'concurrency', 'limit', 'tat',
                         'pause_until', 'epoch', 'ceiling')
local rate = tonumber(state[1]) or tonumber(ARGV[3])
local burst = tonumber(state[2]) or tonumber(ARGV[4])
local concurrency = tonumber(state[3]) or tonumber(ARGV[5])
local limit = tonumber(state[4]) or math.min(concurrency, tonumber(ARGV[8]))
limit = math.max(1, math.floor(math.min(limit, concurrency)))
local epoch = tonumber(state[7]) or 0
local ceiling = tonumber(state[8]) or -1

if #ARGV > 10 then
    redis.call('ZREM', KEYS[2], unpack(ARGV, 11))
end
-- Leases of dead processes are not renewed: they expire here.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local in_flight = redis.call('ZCARD', KEYS[2])
local interval = 1000000 / rate

local function reply(verdict, n, count, due)
    return {verdict, n, limit, in_flight, tostring(rate), burst, concurrency, count, epoch,
            ceiling, due, string.format('%.0f', interval)}
end

local pause_until = tonumber(state[6]) or 0
if pause_until > now then
    return reply('wait', math.ceil(pause_until - now), 0, 0)
end
if in_flight >= limit then
    return reply('full', 0, 0, 0)
end

-- GCRA: theoretical arrival time tat, emission interval T = 1/rate, tolerance
-- (capacity - 1) * T: any window of W seconds admits at most capacity + rate * W.
-- A request may leave once tat - now <= tolerance; those due within the horizon are
-- booked, and one within the reach if none is within the horizon.
local capacity = math.max(1, burst - math.floor(rate * tonumber(ARGV[6])))
local tolerance = (capacity - 1) * interval
local horizon = tonumber(ARGV[9]) * 1000000
local tat = math.max(tonumber(state[5]) or now, now)
local reach = tonumber(ARGV[10]) * 1000000
if tat - now > tolerance + math.max(horizon, reach) then
    return reply('wait', math.ceil(tat - now - tolerance - math.max(horizon, reach)), 0, 0)
end

local due = math.ceil(tat - tolerance - now)
local wanted = math.max(1, tonumber(ARGV[7]))
if tat - now > tolerance + horizon then wanted = 1 end  -- within reach: its place in line
local count = 0
repeat
    tat = tat + interval
    in_flight = in_flight + 1
    count = count + 1
until count >= wanted or in_flight >= limit or tat - now > tolerance + horizon
local last = redis.call('HINCRBY', KEYS[1], 'seq', count)
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat))
local expiry = string.format('%.0f', now + tonumber(ARGV[2]) * 1000000)
for ticket = last - count + 1, last do
    redis.call('ZADD', KEYS[2], expiry, ARGV[1] .. ':' .. ticket)
end
return reply('ok', last - count + 1, count, due)
