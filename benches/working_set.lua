-- wrk script: requests spread over many distinct files, uniformly or with a
-- Zipf(1.0) popularity, from a seeded random sequence.
--
-- Usage: wrk -c256 -t1 -d5s -s benches/working_set.lua http://127.0.0.1:PORT/ -- MODE FILES SEED
--   MODE   uniform: every file equally likely
--          zipf:    the file of popularity rank r (1 = most popular) is asked
--                   for with probability (1/r) / H(FILES), H the harmonic number
--   FILES  how many of the working-set files to use (the first FILES of
--          /ws/DDD/NNNNN.bin, file i in directory i mod 1000, as
--          benchlib/fixtures.py writes them); a count prime to 7919, such
--          as 500, 1000 or 100000
--   SEED   base seed; thread n uses SEED + n, so a run is repeatable
--
-- Popularity ranks are scattered over the files with file = (rank - 1) *
-- 7919 mod FILES (a bijection when FILES is prime to 7919), so the popular files are
-- not all in the first directories. Zipf draws use a precomputed cumulative
-- table and a binary search: about 17 comparisons per request, the same
-- cost for every server.

local next_thread_id = 0

setup = function(thread)
   thread:set("thread_id", next_thread_id)
   next_thread_id = next_thread_id + 1
end

local paths = {}
local cumulative = nil
local files

local function path_of(index)
   return string.format("/ws/%03d/%05d.bin", index % 1000, index)
end

init = function(args)
   local mode = args[1] or "uniform"
   files = tonumber(args[2] or "100000")
   local seed = tonumber(args[3] or "1")
   math.randomseed(seed + (thread_id or 0))
   for i = 0, files - 1 do
      paths[i] = path_of(i)
   end
   if mode == "zipf" then
      cumulative = {}
      local sum = 0.0
      for rank = 1, files do
         sum = sum + 1.0 / rank
         cumulative[rank] = sum
      end
      for rank = 1, files do
         cumulative[rank] = cumulative[rank] / sum
      end
   elseif mode ~= "uniform" then
      error("working_set.lua: MODE must be uniform or zipf, not " .. mode)
   end
end

-- The smallest rank whose cumulative probability reaches u.
local function zipf_rank(u)
   local low, high = 1, files
   while low < high do
      local middle = math.floor((low + high) / 2)
      if cumulative[middle] < u then
         low = middle + 1
      else
         high = middle
      end
   end
   return low
end

request = function()
   local index
   if cumulative then
      index = ((zipf_rank(math.random()) - 1) * 7919) % files
   else
      index = math.random(0, files - 1)
   end
   return wrk.format(nil, paths[index])
end
