-- Heartbeat of one process: renew its leases, report the token's state.
-- KEYS[1] the token's state   KEYS[2] its leases   KEYS[3] its fatal record
-- ARGV[1] lease seconds       ARGV[2..] the process's live leases
-- Reply: {kind, code, status, message, limit, rate, burst, concurrency}
-- (kind is false unless a fatal answer stopped the token).
--#include clock
local now = token_clock(tonumber(ARGV[1]) * 500000)
local expiry = string.format('%.0f', now + tonumber(ARGV[1]) * 1000000)
-- Re-added even if one expired while this process stalled: the request is still on
-- the wire, and the set must count it.
for i = 2, #ARGV do
    redis.call('ZADD', KEYS[2], expiry, ARGV[i])
end
local fatal = redis.call('HMGET', KEYS[3], 'kind', 'code', 'status', 'message')
local state = redis.call('HMGET', KEYS[1], 'limit', 'rate', 'burst', 'concurrency')
return {fatal[1], fatal[2], fatal[3], fatal[4], state[1], state[2], state[3], state[4]}
