-- KEYS: harvest hash, attached marker. ARGV: seconds. Renews the marker of an attached
-- coordinator (not for a harvest whose keys were deleted); returns the harvest's state.
local state = redis.call('HGET', KEYS[1], 'state')
if state then redis.call('SET', KEYS[2], '1', 'EX', ARGV[1]) end
return state
