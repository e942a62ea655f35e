-- Retry-After: hold every request of the token, in every process, for ARGV[1] seconds.
-- KEYS[1] the token's state
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local until_ = now + tonumber(ARGV[1]) * 1000000
if until_ > (tonumber(redis.call('HGET', KEYS[1], 'pause_until')) or 0) then
    redis.call('HSET', KEYS[1], 'pause_until', string.format('%.0f', until_))
end
return 1
