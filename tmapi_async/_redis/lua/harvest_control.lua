-- KEYS: harvest hash, open set. ARGV: pause | resume | cancel, harvest id.
-- Returns {state before, state after} ('' before: no such harvest).
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'', ''} end
local new = state
if ARGV[1] == 'pause' and state == 'open' then new = 'paused'
elseif ARGV[1] == 'resume' and state == 'paused' then new = 'open'
elseif ARGV[1] == 'cancel' and (state == 'open' or state == 'paused') then
  new = 'cancelled'
  redis.call('SREM', KEYS[2], ARGV[2])
end
if new ~= state then redis.call('HSET', KEYS[1], 'state', new) end
return {state, new}
