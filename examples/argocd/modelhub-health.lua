-- Argo CD health check for keysmith.dev/v1alpha1 ModelHub.
-- Plain Lua 5.1 without libraries: Argo CD runs custom checks in gopher-lua with only the base,
-- table and (safe) os libraries, so there is no string or math here.
-- What each status means: examples/argocd/README.md.

-- Ready=False reasons that keysmith retries on its own (with backoff) and that clear without a change.
local transient = {
  ProviderUnreachable = true,
  RateLimited = true,
  ProviderError = true,
  KubernetesApiError = true,
}

local function findCondition(conditions, conditionType)
  if type(conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(conditions) do
    if type(c) == "table" and c.type == conditionType then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

local function asNumber(v)
  if v == nil then
    return nil
  end
  return tonumber(v)
end

-- "Reason: message", or whichever of the two is set ("" when neither is).
local function details(c)
  local reason = ""
  local message = ""
  if type(c.reason) == "string" then
    reason = c.reason
  end
  if type(c.message) == "string" then
    message = c.message
  end
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  return reason .. message
end

local function describe(c)
  local text = details(c)
  if text == "" then
    return tostring(c.type) .. " is " .. tostring(c.status)
  end
  return text
end

local function result(status, message)
  return { status = status, message = message }
end

local function health()
  local generation = nil
  if type(obj.metadata) == "table" then
    generation = asNumber(obj.metadata.generation)
  end
  local waiting = "Waiting for keysmith to reconcile the ModelHub"
  if generation ~= nil then
    waiting = "Waiting for keysmith to observe generation " .. tostring(generation)
  end

  local status = obj.status
  if type(status) ~= "table" then
    return result("Progressing", waiting)
  end
  local observed = asNumber(status.observedGeneration)
  if observed == nil or (generation ~= nil and observed < generation) then
    return result("Progressing", waiting)
  end
  local conditions = status.conditions
  local ready = findCondition(conditions, "Ready")
  if ready == nil then
    return result("Progressing", "Waiting for keysmith to report the Ready condition")
  end
  local readyObserved = asNumber(ready.observedGeneration)
  if readyObserved ~= nil and generation ~= nil and readyObserved < generation then
    return result("Progressing", waiting)
  end

  -- keysmith sets no Stalled or Reconciling on hubs today; honour them should it start to.
  local stalled = findCondition(conditions, "Stalled")
  if isTrue(stalled) then
    return result("Degraded", describe(stalled))
  end

  if ready.status == "True" then
    return result("Healthy", describe(ready))
  end
  if ready.status == "False" then
    local retried = type(ready.reason) == "string" and transient[ready.reason]
    if retried or isTrue(findCondition(conditions, "Reconciling")) then
      return result("Progressing", "Retrying: " .. describe(ready))
    end
    -- CredentialsMissing, Unauthorized, NotAuthorized, InvalidHubConfig, Unsupported, ...
    return result("Degraded", describe(ready))
  end

  -- Ready is Unknown (or something keysmith does not write): wait for a verdict.
  local detail = details(ready)
  if detail == "" then
    return result("Progressing", "Ready is " .. tostring(ready.status))
  end
  return result("Progressing", "Ready is " .. tostring(ready.status) .. ": " .. detail)
end

return health()
