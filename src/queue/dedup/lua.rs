//! The Lua behind each kind of seen filter. A check-and-add script is a
//! prelude from here followed by its body; the prelude defines
//! `seen_filter(keys, f, argv, a)`, which returns three functions:
//! `has(fp)`, `add(fp)` (true if `fp` was new, and records it) and
//! `tally(n)` (counts `n` new fingerprints). The filter's keys are
//! `keys[f..]` and its two arguments `argv[a]`, `argv[a + 1]`.
//!
//! Everything a body does runs in one script, so a check-and-add and the
//! push it decides are one atomic step: a retried script whose reply was
//! lost finds its fingerprints recorded *and* their URLs or items already
//! pushed, exactly as with a set.

/// A Redis set of 16-byte hashes (the shared frontier's URLs).
pub const SET: &str = r"
local function seen_filter(keys, f, argv, a)
  local set = keys[f]
  return function(fp) return redis.call('SISMEMBER', set, fp) == 1 end,
    function(fp) return redis.call('SADD', set, fp) == 1 end,
    function(n) end
end
";

/// A sorted set scored by the time first seen (item fingerprints, which
/// `--seen-ttl` trims). Argument: now, in Unix seconds.
pub const ZSET: &str = r"
local function seen_filter(keys, f, argv, a)
  local set, now = keys[f], argv[a]
  return function(fp) return redis.call('ZSCORE', set, fp) ~= false end,
    function(fp) return redis.call('ZADD', set, 'NX', now, fp) == 1 end,
    function(n) end
end
";

/// A Bloom filter on bitmaps. Keys: the parameters hash, then the pieces.
/// Arguments: bits per piece, k. Positions as `Params::positions`: every
/// step stays below 2^40, so Lua's doubles compute them exactly. One
/// BITFIELD call per fingerprint; `add`'s SETs return the old bits, and a
/// fingerprint is new if any of them was 0.
pub const BITMAP: &str = r"
local function seen_filter(keys, f, argv, a)
  local bits, k = tonumber(argv[a]), tonumber(argv[a + 1])
  local params, pieces = keys[f], #keys - f
  local function mod(fp, from, to, m)
    local r = 0
    for i = from, to do r = (r * 256 + string.byte(fp, i)) % m end
    return r
  end
  local function probe(fp, cmd, op)
    local key = keys[f + 1 + mod(fp, 13, 16, pieces)]
    local g, step = mod(fp, 1, 6, bits), mod(fp, 7, 12, bits)
    if step == 0 then step = 1 end
    local args = {}
    for _ = 1, k do
      args[#args + 1] = op
      args[#args + 1] = 'u1'
      args[#args + 1] = g
      if op == 'SET' then args[#args + 1] = 1 end
      g = (g + step) % bits
    end
    for _, old in ipairs(redis.call(cmd, key, unpack(args))) do
      if old == 0 then return false end
    end
    return true
  end
  return function(fp) return probe(fp, 'BITFIELD_RO', 'GET') end,
    function(fp) return not probe(fp, 'BITFIELD', 'SET') end,
    function(n)
      if n > 0 then redis.call('HINCRBY', params, 'count', n) end
    end
end
";

/// RedisBloom's filter. Keys: the parameters hash, then the BF key.
pub const MODULE: &str = r"
local function seen_filter(keys, f, argv, a)
  local params, bf = keys[f], keys[f + 1]
  return function(fp) return redis.call('BF.EXISTS', bf, fp) == 1 end,
    function(fp) return redis.call('BF.ADD', bf, fp) == 1 end,
    function(n)
      if n > 0 then redis.call('HINCRBY', params, 'count', n) end
    end
end
";

/// Creates a Bloom filter unless its parameters hash exists; returns the
/// stored parameters (kind, capacity, error, bits, pieces, k) if it does.
/// KEYS: parameters hash, then the pieces (or the BF key). ARGV: kind,
/// capacity, error, bits, pieces, k, bytes per piece.
/// Pieces are SET whole, so each is one exact allocation made up front: a
/// bitmap grown by SETBIT would over-allocate, and an OOM would hit mid-crawl.
/// The first write is the one that can be refused for OOM, and then nothing
/// was written; once one write ran, Redis lets the script finish.
pub const CREATE: &str = r"
local p = redis.call('HMGET', KEYS[1], 'kind', 'capacity', 'error', 'bits', 'pieces', 'k')
if p[1] then
  for i = 2, #KEYS do
    local t = redis.call('TYPE', KEYS[i]).ok
    if t ~= 'none' and t ~= 'string' and t ~= 'MBbloom--' then
      return redis.error_reply('WRONGTYPE the Bloom filter key ' .. KEYS[i] .. ' holds a ' .. t)
    end
  end
  return p
end
if ARGV[1] == 'module' then
  redis.call('BF.RESERVE', KEYS[2], ARGV[3], ARGV[2])
else
  local zeros = string.rep('\0', tonumber(ARGV[7]))
  for i = 2, #KEYS do redis.call('SET', KEYS[i], zeros) end
end
redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'capacity', ARGV[2], 'error', ARGV[3],
  'bits', ARGV[4], 'pieces', ARGV[5], 'k', ARGV[6], 'count', 0)
return false";

/// KEYS: the filter's. ARGV: its two arguments, then fingerprints. Adds
/// each; returns 1 per new one. (`qpipe bench`'s way in; crawls and the
/// writer have their own bodies.)
pub const ADD_BODY: &str = r"
local _, add, tally = seen_filter(KEYS, 1, ARGV, 1)
local out, n = {}, 0
for i = 3, #ARGV do
  if add(ARGV[i]) then out[#out + 1] = 1; n = n + 1 else out[#out + 1] = 0 end
end
tally(n)
return out";

/// Like `ADD_BODY`, but only asks: 1 per fingerprint the filter has.
pub const HAS_BODY: &str = r"
local has = seen_filter(KEYS, 1, ARGV, 1)
local out = {}
for i = 3, #ARGV do out[#out + 1] = has(ARGV[i]) and 1 or 0 end
return out";
