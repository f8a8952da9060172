/* timer (Moddable modules/base/timer), native in tools/xs/host/xshost_modules.c; device-clock ms */
class Timer {
	static set(callback, delay, repeat) @ "xs_timer_set";
	static repeat(callback, interval) @ "xs_timer_repeat";
	static schedule(timer, delay, repeat) @ "xs_timer_schedule";
	static clear(timer) @ "xs_timer_clear";
	static delay(ms) @ "xs_timer_delay";
}
export default Timer;
