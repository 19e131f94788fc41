// The guest core as VMX uses it: the hot loop, and VM-entry event injection (SDM 26.5), which the
// core delivers through the guest IDT without consulting the exception bitmap for the injected
// event itself (faults during its delivery are subject to it).
export { injectEvent, runBatch, RunOutcome } from "../../guest/run.ts"
