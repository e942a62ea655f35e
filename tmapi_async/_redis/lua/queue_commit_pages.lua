-- Commit N answered pages of one harvest for one worker, each fenced and once only;
-- and free the in-flight leases the worker released since it last spoke to Redis (a
-- round trip less than a ZREM of their own).
-- KEYS[1] results stream   KEYS[2] counts hash   KEYS[3] shops stream
-- KEYS[4] harvest record   KEYS[4 + i] the shop hash of page i (i = 1..N)
-- KEYS[4 + N + j] the in-flight leases (sorted set) of token j (j = 1..M)
-- ARGV[1] group   ARGV[2] consumer   ARGV[3] N   ARGV[4] M
-- then 8 fields a page: shop URL, page, read (1 = first answer of the page, 2 = its
-- first refetch after drift, ...), total_count, page_size, items (msgspec JSON),
-- number of items, the shop's message id;
-- then for each token j: the number of leases to free, and those leases.
-- Returns one answer a page: 1 committed; 0 this read of the page was committed before
-- (by anyone) or the shop is already finished; -1 the consumer no longer holds the
-- shop's message (taken over: a late commit is refused); -2 the harvest has no record
-- (Redis lost its data, or it was forgotten: nothing is recreated). The leases are
-- freed whatever the answers.
local n, m = tonumber(ARGV[3]), tonumber(ARGV[4])
local at = 5 + 8 * n
for j = 1, m do
  local count = tonumber(ARGV[at])
  if count > 0 then
    redis.call('ZREM', KEYS[4 + n + j], unpack(ARGV, at + 1, at + count))
  end
  at = at + 1 + count
end

local function commit(shop, url, page, read_text, total_text, size, items, count, mid)
  local held = redis.call('XPENDING', KEYS[3], ARGV[1], mid, mid, 1)[1]
  if not held or held[2] ~= ARGV[2] then return -1 end
  if redis.call('HEXISTS', shop, 'status') == 1 then return 0 end
  local read = tonumber(read_text)
  if tonumber(redis.call('HGET', shop, 'r' .. page) or '0') >= read then return 0 end
  redis.call('HSET', shop, 'r' .. page, read)
  local total = tonumber(total_text)
  if total > tonumber(redis.call('HGET', shop, 't' .. page) or '-1') then
    redis.call('HSET', shop, 't' .. page, total)
  end
  if page == '1' or redis.call('HEXISTS', shop, 'size') == 0 then
    redis.call('HSET', shop, 'size', size)
  end
  redis.call('XADD', KEYS[1], '*', 'kind', 'page', 'shop', url, 'page', page,
    'read', read_text, 'total', total_text, 'size', size, 'items', items)
  redis.call('HINCRBY', KEYS[2], 'pages', 1)
  redis.call('HINCRBY', KEYS[2], 'items', tonumber(count))
  return 1
end

local answers = {}
local gone = redis.call('EXISTS', KEYS[4]) == 0 or redis.call('EXISTS', KEYS[3]) == 0
for i = 1, n do
  if gone then
    answers[i] = -2
  else
    local a = 4 + 8 * (i - 1)
    answers[i] = commit(KEYS[4 + i], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4],
      ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8])
  end
end
return answers
