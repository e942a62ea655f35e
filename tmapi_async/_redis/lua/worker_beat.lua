-- KEYS: workers hash, the fleet's pulse. ARGV: worker id, its description (JSON without
-- the time), pulse gap (ms), take-over hold (ms).
-- Records the worker's heartbeat on the Redis clock, so machines' clocks do not matter.
local P, GAP, HOLD = KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4])
--#include pulse
redis.call('HSET', KEYS[1], ARGV[1], t[1] .. ' ' .. ARGV[2])
return t[1]
