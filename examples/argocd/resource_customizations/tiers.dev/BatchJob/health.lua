-- Argo CD health of a Tiers BatchJob, from the status contract the operator writes:
-- observedGeneration and the Succeeded condition of the latest run (True: it succeeded, False:
-- it failed or cannot start, Unknown: pending, running or waiting for its first scheduled run).
--   Suspended    spec.suspend is true
--   Progressing  the operator has not observed this generation yet, or a one-off job's run is
--                pending or running
--   Healthy      the latest run succeeded; or, on a schedule, no run has finished yet or the
--                next one is going (as Argo CD judges a CronJob)
--   Degraded     the latest run failed, or no run can start (a refused spec, a missing
--                endpoint, no Spark Operator)
-- Only the base and table libraries are used: Argo CD runs health checks in a sandbox.
local hs = {}

local function condition(status, type)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, found in ipairs(status.conditions) do
    if found.type == type then
      return found
    end
  end
  return nil
end

local generation = obj.metadata.generation or 0

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: no run starts until it is false again"
  return hs
end

local status = obj.status
if status == nil or status.observedGeneration == nil or status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local succeeded = condition(status, "Succeeded")
if succeeded == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Succeeded condition of generation " .. tostring(generation)
  return hs
end

local message = (succeeded.reason or "") .. ": " .. (succeeded.message or "")
if succeeded.status == "True" then
  hs.status = "Healthy"
  hs.message = succeeded.message or ""
elseif succeeded.status == "False" then
  hs.status = "Degraded"
  hs.message = message
elseif obj.spec ~= nil and obj.spec.schedule ~= nil then
  hs.status = "Healthy"
  hs.message = "on schedule " .. obj.spec.schedule .. ": " .. message
else
  hs.status = "Progressing"
  hs.message = message
end
return hs
