-- Retry-After: hold every request of the token, in every process, for ARGV[1] seconds.
-- KEYS[1] the token's state   ARGV[2] lease seconds (the clock's step is half of it)
--#include clock
local now = token_clock((tonumber(ARGV[2]) or 5) * 500000)
local until_ = now + tonumber(ARGV[1]) * 1000000
if until_ > (tonumber(redis.call('HGET', KEYS[1], 'pause_until')) or 0) then
    redis.call('HSET', KEYS[1], 'pause_until', string.format('%.0f', until_))
end
return 1
