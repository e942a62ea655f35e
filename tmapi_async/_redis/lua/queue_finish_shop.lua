-- KEYS: shop hash, results stream, counts hash, shops stream, dead set, harvest record.
-- ARGV: shop URL, message id, group, status, error, total_count, pages, requests,
-- item count, dead ('1': given up after too many deliveries), consumer.
-- Returns 1 if this call finished the shop (and acknowledged its message); 0 if
-- someone had finished it before (the message is acknowledged anyway); -1 if the
-- consumer no longer holds the message (taken over: its verdict is refused, nothing
-- changes); -2 if the harvest has no record.
if redis.call('EXISTS', KEYS[6]) == 0 or redis.call('EXISTS', KEYS[4]) == 0 then
  return -2
end
local held = redis.call('XPENDING', KEYS[4], ARGV[3], ARGV[2], ARGV[2], 1)[1]
if not held or held[2] ~= ARGV[11] then return -1 end
redis.call('XACK', KEYS[4], ARGV[3], ARGV[2])
redis.call('XDEL', KEYS[4], ARGV[2])
if redis.call('HEXISTS', KEYS[1], 'status') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'error', ARGV[5])
redis.call('XADD', KEYS[2], '*', 'kind', 'shop', 'shop', ARGV[1], 'status', ARGV[4],
  'error', ARGV[5], 'total', ARGV[6], 'pages', ARGV[7], 'requests', ARGV[8],
  'items', ARGV[9])
redis.call('HINCRBY', KEYS[3], 'done', 1)
redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
if ARGV[10] == '1' then redis.call('SADD', KEYS[5], ARGV[1]) end
return 1
