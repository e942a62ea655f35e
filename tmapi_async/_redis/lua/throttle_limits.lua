-- Set the token's limits: the last to set them wins. An empty ARGV leaves that one as is.
-- KEYS[1] the token's state   ARGV[1] rate   ARGV[2] burst   ARGV[3] concurrency
-- A new concurrency restarts the adaptive limit from it (refusals of requests sent before
-- now no longer cut it); the same concurrency set again keeps the limit where it is.
local old = tonumber(redis.call('HGET', KEYS[1], 'concurrency'))
local names = {'rate', 'burst', 'concurrency'}
for i = 1, 3 do
    if ARGV[i] ~= '' then redis.call('HSET', KEYS[1], names[i], ARGV[i]) end
end
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= old then
    redis.call('HSET', KEYS[1], 'limit', ARGV[3], 'ceiling', ARGV[3],
               'cut_after', redis.call('HGET', KEYS[1], 'seq') or 0)
end
return 1
