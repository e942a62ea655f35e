-- New shops for a worker, with what Redis holds of each: one round trip for both.
-- KEYS[1] shops stream. ARGV[1] group, ARGV[2] consumer, ARGV[3] count.
-- Returns {{message id, shop URL, {field, value, ...} of its hash, or false}, ...}:
-- false when the message does not name its hash (submitted by an older version).
-- Never blocks: nothing new gives {} (the caller then waits with a blocking read).
local answer = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
  'STREAMS', KEYS[1], '>')
local out = {}
if not answer then return out end
for _, message in ipairs(answer[1][2]) do
  local fields, shop, key = message[2] or {}, nil, nil
  for j = 1, #fields, 2 do
    if fields[j] == 'shop' then shop = fields[j + 1] end
    if fields[j] == 'key' then key = fields[j + 1] end
  end
  if shop then
    out[#out + 1] = {message[1], shop, key and redis.call('HGETALL', key) or false}
  end
end
return out
