-- wrk script: POSTs a ~10 KiB multipart OpenRosa submission (a unique
-- instanceID each time) to /a/benchN/receiver/, N cycling over
-- SPOOL_PROJECTS projects (environment, default 16) so that a replay has
-- that many projects to run in parallel; prints one RESULT line.
local projects = tonumber(os.getenv("SPOOL_PROJECTS") or "16")
local boundary = "cutoverbench7d1f"
local n = 0
local head = "--" .. boundary .. "\r\n" ..
   'Content-Disposition: form-data; name="xml_submission_file"; filename="form.xml"\r\n' ..
   "Content-Type: text/xml\r\n\r\n" ..
   '<?xml version="1.0"?><data id="bench" xmlns:jrm="http://dev.commcarehq.org/jr/xforms">' ..
   "<meta><instanceID>uuid:"
-- the form's answers: pads the body to about 10 KiB
local tail = "</instanceID></meta><notes>" .. string.rep("0123456789abcdef", 632) ..
   "</notes></data>\r\n--" .. boundary .. "--\r\n"
local headers = {
   ["Content-Type"] = "multipart/form-data; boundary=" .. boundary,
   ["X-OpenRosa-Version"] = "1.0",
   ["Authorization"] = "Basic ZGV2aWNlOnMzY3JldA==",
   ["Date"] = "Fri, 04 Dec 2026 15:00:00 GMT",
   ["User-Agent"] = "wrk-spool-bench",
}
local seed = tostring(math.random(0, 0x7fffffff))

request = function()
   n = n + 1
   local id = string.format("%s-%08x-%012d", seed, os.time() % 0x7fffffff, n)
   return wrk.format("POST", "/a/bench" .. (n % projects) .. "/receiver/", headers,
                     head .. id .. tail)
end

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
      summary.requests, summary.duration,
      latency:percentile(50.0), latency:percentile(99.0),
      e.connect + e.read + e.write + e.timeout, e.status))
end
