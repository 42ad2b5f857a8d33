/// How long the control loop waits for its next tick when nothing wakes it sooner.
///
/// A tick that moved memory, was held back by a rate limit or held a fruitless group back is
/// followed at once: the host has changed meanwhile. A quiet tick — nothing planned, free DRAM
/// at or above `high` one lookahead ahead, no opt-out memory on slow nodes — is followed after
/// `idleInterval`: on a host with thousands of groups and nothing to move, reading every group's
/// files is most of what tierd costs, and while the free-DRAM watch samples between ticks a host
/// that starts to fill wakes a tick within one watch period anyway (as PSI triggers, a reload or
/// a manual move do). Pure: the service hands it the tick's plan.
public enum TickPacing {
    public static func pause(after plan: MigrationPlan, moved: Bool, heldBack: Bool, settings: ControllerSettings) -> Duration {
        if moved || heldBack || plan.summary.deferredBytes > 0 { return min(settings.interval, .milliseconds(100)) }
        return isQuiet(plan, settings: settings) ? max(settings.interval, settings.idleInterval) : settings.interval
    }

    /// Nothing to do and nothing close to it, with the free-DRAM watch on to notice a change.
    public static func isQuiet(_ plan: MigrationPlan, settings: ControllerSettings) -> Bool {
        let summary = plan.summary
        return settings.dramWatch > .zero && plan.actions.isEmpty && !summary.reclaiming
            && summary.promotionNeed == 0 && summary.demotionDemand == 0
            && summary.dramTotal > 0 && summary.projectedDramFree >= summary.highWatermark
    }
}
