-- wrk script of testdata/bench/serve-ab.sh: every request names one of the first N files
-- of the benchmark tree at random (N is the script's argument: wrk -s serve-random.lua URL -- N).
-- The paths are the ones serve-ab.sh generates under .tmp/bench-serve/origin.
local n = 20000
function init(args)
  if args[1] then n = tonumber(args[1]) end
  math.randomseed(os.time() + n)
end
request = function()
  return wrk.format("GET", "/pub/bench/linux/releases/40/Everything/x86_64/os/Packages/p/python3-package-number-" ..
    math.random(0, n - 1) .. "-1.2.3-1.fc40.noarch.rpm")
end
