/* time (Moddable modules/base/time): ticks are device-clock ms since start (scaled by --speed) */
class Time {
	static get ticks() @ "xs_time_ticks";
	static delta(start, end) @ "xs_time_delta";
}
export default Time;
