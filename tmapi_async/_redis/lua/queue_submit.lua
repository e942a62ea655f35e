-- KEYS: members set, shop hash, shops stream, counts hash, dead set, harvest record.
-- ARGV: shop URL. Each message holds the shop's URL and the key of its hash.
-- Returns 1 (submitted), 2 (finished failed or partial before: submitted again), 0 (known),
-- -2 (the harvest has no record: Redis lost it, or it was forgotten).
if redis.call('EXISTS', KEYS[6]) == 0 then return -2 end
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('XADD', KEYS[3], '*', 'shop', ARGV[1], 'key', KEYS[2])
  redis.call('HINCRBY', KEYS[4], 'submitted', 1)
  return 1
end
local status = redis.call('HGET', KEYS[2], 'status')
if status == 'failed' or status == 'partial' then
  redis.call('HDEL', KEYS[2], 'status', 'error')
  redis.call('HINCRBY', KEYS[4], status, -1)
  redis.call('HINCRBY', KEYS[4], 'done', -1)
  redis.call('SREM', KEYS[5], ARGV[1])
  redis.call('XADD', KEYS[3], '*', 'shop', ARGV[1], 'key', KEYS[2])
  return 2
end
return 0
