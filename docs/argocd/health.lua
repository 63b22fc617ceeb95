-- Argo CD health check for conversations.twilio-operator.io/ConversationWebhook.
-- Argo CD has none for custom resources; this maps the operator's kstatus
-- conditions to Healthy / Progressing / Degraded / Suspended.
local hs = {}
local annotations = (obj.metadata or {}).annotations or {}
if annotations["conversations.twilio-operator.io/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "Reconciliation is paused by the conversations.twilio-operator.io/paused annotation"
  return hs
end
local status = obj.status or {}
if status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile"
  return hs
end
local generation = (obj.metadata or {}).generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile generation " .. generation
  return hs
end
local ready, stalled, reconciling
for _, c in ipairs(status.conditions) do
  if c.type == "Ready" then ready = c end
  if c.type == "Stalled" then stalled = c end
  if c.type == "Reconciling" then reconciling = c end
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "Stalled") .. ": " .. (stalled.message or "")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
if ready ~= nil and ready.reason == "Paused" then
  hs.status = "Suspended"
  hs.message = ready.message or "Paused"
  return hs
end
hs.status = "Progressing"
local c = reconciling or ready
if c ~= nil then
  hs.message = (c.reason or "") .. ": " .. (c.message or "")
else
  hs.message = "Waiting for the operator to reconcile"
end
return hs
