-- Set the token's limits: the last to set them wins. An empty ARGV leaves that one as is.
-- KEYS[1] the token's state   ARGV[1] rate   ARGV[2] burst   ARGV[3] concurrency
-- ARGV[4] START (of tmapi_async/_adaptive.py)
-- A new concurrency restarts the adaptive limit (from START, nothing learnt: answers of
-- requests sent before now no longer count); the same concurrency set again keeps it.
local old = tonumber(redis.call('HGET', KEYS[1], 'concurrency'))
local names = {'rate', 'burst', 'concurrency'}
for i = 1, 3 do
    if ARGV[i] ~= '' then redis.call('HSET', KEYS[1], names[i], ARGV[i]) end
end
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= old then
    local epoch = (tonumber(redis.call('HGET', KEYS[1], 'epoch')) or 0) + 1
    redis.call('HSET', KEYS[1], 'limit', math.min(tonumber(ARGV[3]), tonumber(ARGV[4])),
               'ceiling', -1, 'epoch', epoch, 'since_probe', 0)
    redis.call('HDEL', KEYS[1], 'probe_gap', 'cut_after')
end
return 1
