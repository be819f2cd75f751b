-- wrk script: HTTP/1.1 pipelining, 16 requests per write.
--
-- Usage: wrk -c50 -t1 -d5s -s benches/pipeline.lua http://127.0.0.1:PORT/index.html
--
-- wrk sends whatever `request()` returns in one write and then counts one
-- completed request per response it parses, so returning 16 requests joined
-- together keeps 16 in flight on every connection. The server must answer
-- them in order; a server that reads only the first request of a buffer and
-- waits for the network again shows up here as a low figure.

local depth = 16
local batch

init = function(args)
   local path = wrk.path
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format(nil, path)
   end
   batch = table.concat(r)
end

request = function()
   return batch
end
